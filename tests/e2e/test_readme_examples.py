"""Every shell example of the README and of the pages under docs/ that calls the API runs as pasted
against a demo server.

`serve --demo` is started as the quickstart says; each ```bash (or ```sh) block that calls `curl` or
`observatory-api` runs in bash with `set -euo pipefail` and curl failing on any answer that is not
2xx. What the test changes: the addresses (the server's free ports instead of 8080 and 9090) and
the quickstart's placeholder line `KEY=obs_...`, which a reader replaces with the printed key and
the test with the real one. A command block this test does not run must say why (NOT_RUN) or be a
quickstart that tests/instrumentations/test_quickstarts.py runs: a new page's commands cannot go
untested by accident.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_AUTH
from tests.e2e.server import UNSET, RunningServer, start_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?P<marker><!-- quickstart: [\w-]+ -->\n)?```(?:bash|sh)\n(?P<code>.*?)```", re.S)
RUNS = re.compile(r"^\s*(?:\S+=\S+ )*(?:\S+=\$\()?(?:curl|observatory-api) ", re.M)
PLACEHOLDER = re.compile(r"^KEY=obs_\.\.\..*$", re.M)
# Fails on any answer that is not 2xx, and prints a newline after each body shown (not after one
# written to a file: an example that reads the file back must read what curl wrote).
CURL = 'curl() { command curl -sS --fail-with-body "$@"; [ -f /proc/self/fd/1 ] || echo; }'

# Command blocks not run here: a line of the block -> why, and what tests it instead.
NOT_RUN = {
    ".venv/bin/observatory-api serve --demo": (
        "installs the package and runs the whole suite; this test's server is that `serve --demo`, "
        "and tests/e2e/test_first_run.py checks what it prints"
    ),
    "# printed by serve --demo": (
        "the environment of the reader's application; tests/instrumentations/test_quickstarts.py runs "
        "applications with these variables"
    ),
    "export OTEL_EXPORTER_OTLP_COMPRESSION=gzip": (
        "the environment of the reader's application; tests/instrumentations/test_quickstarts.py runs "
        "applications with these variables"
    ),
    "opentelemetry-instrument python app.py": (
        "a quickstart: tests/instrumentations/test_quickstarts.py runs it (otel-genai) in a fresh "
        "virtual environment made from its own pip line"
    ),
    "export REDIS_SENTINELS=10.0.0.11:26379": (
        "the environment of a deployment with three Sentinels; tests/sentinel_group.py runs a primary, a "
        "replica and three Sentinels for tests/integration/security/test_redis_sentinel.py"
    ),
    ".venv/bin/python -m pytest tests/e2e/test_redis_sentinel.py -q -s": "runs a test of the suite itself",
    ".venv/bin/python -m pytest tests/unit/test_redis_sentinel_settings.py": "runs tests of the suite itself",
    "http://other-host:8080/v1/traces": (
        "posts to a second service; tests/integration/exports/test_otlp_export.py exports, ingests the "
        "lines into an empty database and compares"
    ),
    ".venv/bin/python bench/read_ceiling.py": (
        "a benchmark of several minutes; bench/RESULTS.md holds its figures and the tests of what it "
        "measures are tests/integration/security/test_response_encoding.py"
    ),
    'sudo -u postgres psql -c "CREATE ROLE observatory': (
        "needs a PostgreSQL superuser and starts a long-running server; migrate, seed and serve on "
        "PostgreSQL are tested in tests/integration/test_cli.py and tests/e2e"
    ),
    ".ci/run ": "the test suite itself",
    "pg_basebackup -h db-primary": (
        "needs a second database host; tests/replica.py runs the same pg_basebackup -R -X stream -C -S "
        "and pg_ctl against the test PostgreSQL for tests/integration/replicas"
    ),
    "# the checks of .ci/run, before its tests": "what .ci/run runs before the tests: CI is their test",
    ".venv/bin/pre-commit install": (
        "installs a git hook; tests/unit/test_pre_commit_config.py checks the hooks run what .ci/run runs"
    ),
}


def blocks(page: Path) -> list[tuple[bool, str]]:
    """(is a tested quickstart, code) of every shell block of a page, in order."""
    return [(bool(m["marker"]), m["code"]) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def examples() -> list[tuple[str, str]]:
    """(page:index, code) of every block this test runs."""
    found = []
    for page in PAGES:
        runnable = [code for quickstart, code in blocks(page) if not quickstart and RUNS.search(code)]
        runnable = [code for code in runnable if not any(line in code for line in NOT_RUN)]
        found += [(f"{page.relative_to(ROOT)}:{index}", code) for index, code in enumerate(runnable)]
    return found


EXAMPLES = examples()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str, Path]]:
    workdir = tmp_path_factory.mktemp("readme")
    with start_server(workdir, workers=1, demo_traces=60) as server:
        match = re.search(r"demo API key \(developer\): (obs_\S+)", server.log.read_text())
        assert match, server.log.read_text()
        yield server, match.group(1), workdir


def test_the_pages_that_show_calls_have_their_examples() -> None:
    pages = {name.split(":")[0] for name, _ in EXAMPLES}
    shown = {"README.md", "docs/api.md", "docs/security.md", "docs/graphql.md", "docs/metrics.md", "docs/monitoring.md"}
    assert shown <= pages
    assert len(EXAMPLES) >= 8


def test_every_command_block_is_run_or_says_why() -> None:
    unexplained, explanations_used = [], set()
    for page in PAGES:
        for quickstart, code in blocks(page):
            reasons = [line for line in NOT_RUN if line in code]
            explanations_used.update(reasons)
            if quickstart or reasons or RUNS.search(code):
                continue
            unexplained.append(f"{page.relative_to(ROOT)}:\n{code}")
    assert unexplained == [], "run these here (curl, observatory-api) or say in NOT_RUN what tests them"
    assert explanations_used == set(NOT_RUN), "NOT_RUN names blocks no page shows any more"


@pytest.mark.parametrize(("name", "block"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_runs_as_pasted(demo: tuple[RunningServer, str, Path], name: str, block: str) -> None:
    server, key, workdir = demo
    script = PLACEHOLDER.sub("", block)
    script = script.replace("http://127.0.0.1:8080", server.base)
    script = script.replace("http://127.0.0.1:9090", server.metrics)
    script = script.replace(f"{server.metrics}/metrics", server.metrics)
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        KEY=key,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        JWT_SECRET=TEST_AUTH.jwt_secret or "",  # the server's, as the security page's comment asks
        SECRET_KEY=TEST_AUTH.secret_key or "",
    )
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{CURL}\n{script}"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{name}\n{block}\n{output}"
