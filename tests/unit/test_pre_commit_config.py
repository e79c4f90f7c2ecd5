"""The pre-commit hooks run the checks of .ci/run, from the project's venv, without network."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {"ruff-format": ".venv/bin/ruff format", "ruff-check": ".venv/bin/ruff check", "mypy": ".venv/bin/mypy"}


def hooks() -> dict[str, dict[str, object]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    # Only local hooks: a remote repository would be cloned from the network on first use.
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def test_hooks_are_the_checks_of_ci() -> None:
    found = hooks()
    assert set(found) == set(CHECKS)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for hook_id, command in CHECKS.items():
        hook = found[hook_id]
        assert hook["entry"] == command
        assert hook["language"] == "system"
        # CI runs the same command on its own line (ruff format with --check).
        assert re.search(rf"^{re.escape(command)}\b", ci, re.M), f".ci/run does not run {command}"


def test_mypy_runs_on_the_whole_package_after_ruff() -> None:
    # mypy checks what [tool.mypy] names, not the files of a commit: one module's change can break another.
    assert hooks()["mypy"]["pass_filenames"] is False
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index(".venv/bin/ruff check") < ci.index(".venv/bin/mypy") < ci.index("-m pytest")


def test_the_hook_commands_are_installed_by_the_dev_extra() -> None:
    bin_dir = Path(sys.executable).parent
    for command in CHECKS.values():
        assert (bin_dir / command.split()[0].rsplit("/", 1)[-1]).exists(), command
