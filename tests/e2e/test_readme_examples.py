"""Every shell example of the README that calls the API runs as pasted against a demo server.

`serve --demo` is started as the quickstart says; each ```bash block holding `curl` runs in bash
with `set -euo pipefail` and curl failing on any answer that is not 2xx. What the test changes:
the addresses (the server's free ports instead of 8080 and 9090) and the quickstart's placeholder
line `KEY=obs_...`, which a reader replaces with the printed key and the test with the real one.
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

README = Path(__file__).parents[2] / "README.md"
PLACEHOLDER = re.compile(r"^KEY=obs_\.\.\..*$", re.M)
# Fails on any answer that is not 2xx, and prints a newline after each body shown (not after one
# written to a file: an example that reads the file back must read what curl wrote).
CURL = 'curl() { command curl -sS --fail-with-body "$@"; [ -f /proc/self/fd/1 ] || echo; }'


def examples() -> list[str]:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", README.read_text(), re.S)
    return [block for block in blocks if re.search(r"^\s*(?:\S+=\$\()?curl ", block, re.M)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str, Path]]:
    workdir = tmp_path_factory.mktemp("readme")
    with start_server(workdir, workers=1, demo_traces=60) as server:
        match = re.search(r"demo API key \(developer\): (obs_\S+)", server.log.read_text())
        assert match, server.log.read_text()
        yield server, match.group(1), workdir


def test_the_readme_has_its_examples() -> None:
    assert len(examples()) >= 6


@pytest.mark.parametrize("index", range(len(examples())))
def test_readme_example_runs_as_pasted(demo: tuple[RunningServer, str, Path], index: int) -> None:
    server, key, workdir = demo
    block = examples()[index]
    script = PLACEHOLDER.sub("", block)
    script = script.replace("http://127.0.0.1:8080", server.base)
    script = script.replace("http://127.0.0.1:9090", server.metrics)[:None]
    script = script.replace(f"{server.metrics}/metrics", server.metrics)
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        KEY=key,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        JWT_SECRET=TEST_AUTH.jwt_secret or "",  # the server's, as the README's comment asks
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
    assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
