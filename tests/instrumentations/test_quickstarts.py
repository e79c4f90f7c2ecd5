"""The quickstarts of docs/ingest.md, run as written: each block marked `<!-- quickstart: NAME -->` gives
the environment (its `export` lines) and the program (the Python block after it). The program
runs in its own interpreter with that environment, pointed at a real `observatory-api serve` (the
endpoint and key substituted) and at the fake OpenAI server (`OPENAI_BASE_URL`); the spans it
exports must arrive, and the exporters must print no error (metric exports included).

A block that ends with a command (`opentelemetry-instrument python app.py`) is run that way, in a
fresh virtual environment made from the block's own `pip install` line: zero-code instrumentation
loads every instrumentation installed, so the suite's environment (three OpenAI instrumentations)
would not be what the reader has. The install is held to the versions of the suite's environment
(a constraints file from its `pip freeze`), so it resolves at once and the same way every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.instrumentations.fake_openai import FakeOpenAI
from tests.integration.ingest.conftest import IngestServer, ingest_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e
INGEST_DOC = Path(__file__).resolve().parents[2] / "docs" / "ingest.md"
QUICKSTART = re.compile(
    r"<!-- quickstart: (?P<name>[\w-]+) -->\n```bash\n(?P<bash>.*?)```\n\n```python\n(?P<python>.*?)```", re.S
)
TESTED = (
    "otel-genai",
    "openinference",
    "openinference-langchain",
    "openinference-llama-index",
    "traceloop",
    "openlit",
)
# What the exporters print when an export fails (HTTP status errors, refused connections).
# Status codes as whole numbers: a port such as 40117 in the exporter's banner is no error.
EXPORT_ERRORS = re.compile(r"Failed to export|error code|StatusCode\.|\b40[14]\b|Transient error", re.I)


@dataclass(frozen=True)
class Quickstart:
    env: dict[str, str]
    program: str
    pip: list[str]  # the packages of the `pip install` line
    command: str | None  # how the block runs the program, when it says (else: python app.py)


def quickstarts() -> dict[str, Quickstart]:
    found = {}
    for match in QUICKSTART.finditer(INGEST_DOC.read_text(encoding="utf-8")):
        env, pip, command = {}, [], None
        for line in match["bash"].splitlines():
            if line.startswith("pip install "):
                pip = line.removeprefix("pip install ").split()
            elif line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                value = re.split(r"\s+#", value, maxsplit=1)[0].strip().strip('"')
                env[name] = value
            elif line.strip():
                command = line.strip()
        found[match["name"]] = Quickstart(env, match["python"], pip, command)
    return found


def fresh_environment(directory: Path, packages: list[str]) -> Path:
    """A new virtual environment with `packages`, held to the suite's versions; its bin folder."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    )
    constraints = directory / "constraints.txt"
    constraints.write_text("\n".join(line for line in frozen.stdout.splitlines() if " @ " not in line) + "\n")
    subprocess.run([sys.executable, "-m", "venv", str(directory / "venv")], check=True, timeout=120)
    bin_dir = directory / "venv" / "bin"
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "-c", str(constraints), *packages],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return bin_dir


def test_the_ingest_page_marks_every_tested_quickstart() -> None:
    assert set(quickstarts()) == set(TESTED)


def wait_for_spans(server: IngestServer, service: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    params = {"service": service, "from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
    params["to"] = (now + timedelta(hours=1)).isoformat()
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{server.base}/api/v1/spans", params=params, headers=server.reader, timeout=10)
        assert response.status_code == 200, response.text
        spans: list[dict[str, Any]] = response.json()["data"]
        if any(span["kind"] == "llm" for span in spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.3)


@pytest.mark.parametrize("name", TESTED)
def test_a_readme_quickstart_delivers_its_spans(
    name: str,
    ingest_server: IngestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    service = f"quickstart-{name}"
    quickstart = quickstarts()[name]

    def fill(text: str) -> str:
        text = text.replace("http://localhost:4318", ingest_server.base).replace("support-bot", service)
        return text.replace("<ingest key>", ingest_server.ingest_key)

    script = tmp_path / "app.py"
    script.write_text(fill(quickstart.program))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "TRACELOOP_"))}
    env.update({key: fill(value) for key, value in quickstart.env.items()})
    if quickstart.command is None:
        command = [sys.executable, str(script)]
    else:
        # The block's own command, in the environment its own pip line makes.
        bin_dir = fresh_environment(tmp_path, quickstart.pip)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.pop("VIRTUAL_ENV", None)
        command = ["bash", "-c", quickstart.command]
    fake = FakeOpenAI()
    with fake.running():
        # OPENAI_API_BASE for LlamaIndex's OpenAI, which does not read OPENAI_BASE_URL.
        env.update(OPENAI_BASE_URL=fake.base_url, OPENAI_API_BASE=fake.base_url, OPENAI_API_KEY="sk-fake-quickstart")
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(fake.log) == 1
    spans = wait_for_spans(ingest_server, service)
    calls = [span for span in spans if span["kind"] == "llm"]
    assert calls, spans
    assert calls[0]["model"].startswith("gpt-4o-mini")
    assert calls[0]["input_tokens"] == fake.log[0].prompt_tokens
    output = done.stdout + done.stderr
    assert not EXPORT_ERRORS.search(output), output[-3000:]
