"""Regenerate the committed captures: what each instrumentation really exports, and what the fake
OpenAI server answered, for tests that replay them without the packages.

    .venv/bin/python -m tests.instrumentations.capture            # every instrumentation
    .venv/bin/python -m tests.instrumentations.capture openlit    # one

For each instrumentation: a fresh fake OpenAI server and a recording OTLP receiver, the harness
scenario in its own process, then `captures/<name>.json` (the OTLP exports as JSON, the package
versions, the summary of the run) and `captures/<name>.server.json` (the fake server's log).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.instrumentations.fake_openai import FakeOpenAI
from tests.instrumentations.harness import INSTRUMENTATIONS, run_instrumentation
from tests.instrumentations.otlp_recorder import OtlpRecorder
from tests.instrumentations.scenario import SESSION_ID, USER_ID

CAPTURES = Path(__file__).resolve().parent / "captures"
CAPTURE_KEY = "obs_capture-placeholder-key"  # the recorder accepts anything; shows where the key goes
SETTLE_SECONDS = 0.5


def capture(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    fake, recorder = FakeOpenAI(), OtlpRecorder()
    with fake.running(), recorder.running():
        summary = run_instrumentation(
            name,
            openai_base_url=fake.base_url,
            otlp_endpoint=recorder.endpoint,
            otlp_headers={"x-api-key": CAPTURE_KEY},
        )
        time.sleep(SETTLE_SECONDS)  # exports sent at shutdown have all been answered by now
        requests = recorder.take()
        exchanges = fake.log_json()
    summary.pop("stderr_tail", None)
    document = {
        "instrumentation": name,
        "description": INSTRUMENTATIONS[name].description,
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "user_id": USER_ID,
        "session_id": SESSION_ID,
        "run": summary,
        "exports": requests,
    }
    return document, exchanges


def write(name: str) -> Path:
    document, exchanges = capture(name)
    CAPTURES.mkdir(exist_ok=True)
    path = CAPTURES / f"{name}.json"
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    (CAPTURES / f"{name}.server.json").write_text(json.dumps({"exchanges": exchanges}, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(INSTRUMENTATIONS)}")
    names = parser.parse_args(argv).names or list(INSTRUMENTATIONS)
    unknown = sorted(set(names) - set(INSTRUMENTATIONS))
    if unknown:
        parser.error(f"unknown instrumentation: {', '.join(unknown)}")
    for name in names:
        path = write(name)
        document = json.loads(path.read_text())
        signals = [request["signal"] for request in document["exports"]]
        spans = sum(
            len(scope.get("spans", []))
            for request in document["exports"]
            if request["signal"] == "traces"
            for resource in request["body"].get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
        )
        print(
            f"{name}: {spans} spans in {signals.count('traces')} trace exports, "
            f"{signals.count('logs')} log exports, {signals.count('metrics')} metric exports -> {path}"
        )


if __name__ == "__main__":
    main()
