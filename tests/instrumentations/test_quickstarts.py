"""The quickstarts of docs/ingest.md, run as written: each block marked `<!-- quickstart: NAME -->` gives
the environment (its `export` lines) and the program (the Python block after it). The program
runs in its own interpreter with that environment, pointed at a real `observatory-api serve` (the
endpoint and key substituted) and at the fake OpenAI server (`OPENAI_BASE_URL`); the spans it
exports must arrive, and the exporters must print no error (metric exports included)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
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
TESTED = ("openinference", "openinference-langchain", "traceloop", "openlit")
# What the exporters print when an export fails (HTTP status errors, refused connections).
EXPORT_ERRORS = re.compile(r"Failed to export|error code|StatusCode\.|404|401|Transient error", re.I)


def quickstarts() -> dict[str, tuple[dict[str, str], str]]:
    found = {}
    for match in QUICKSTART.finditer(INGEST_DOC.read_text(encoding="utf-8")):
        env = {}
        for line in match["bash"].splitlines():
            if not line.startswith("export "):
                continue
            name, _, value = line.removeprefix("export ").partition("=")
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip().strip('"')
            env[name] = value
        found[match["name"]] = (env, match["python"])
    return found


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
    settings, program = quickstarts()[name]

    def fill(text: str) -> str:
        text = text.replace("http://localhost:4318", ingest_server.base).replace("support-bot", service)
        return text.replace("<ingest key>", ingest_server.ingest_key)

    script = tmp_path / "app.py"
    script.write_text(fill(program))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "TRACELOOP_"))}
    env.update({key: fill(value) for key, value in settings.items()})
    fake = FakeOpenAI()
    with fake.running():
        env.update(OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-fake-quickstart")
        done = subprocess.run(
            [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(fake.log) == 1
    spans = wait_for_spans(ingest_server, service)
    calls = [span for span in spans if span["kind"] == "llm"]
    assert calls, spans
    assert calls[0]["model"].startswith("gpt-4o-mini")
    assert calls[0]["input_tokens"] == fake.log[0].prompt_tokens
    output = done.stdout + done.stderr
    assert not EXPORT_ERRORS.search(output), output[-3000:]
