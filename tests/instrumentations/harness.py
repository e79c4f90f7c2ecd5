"""Drive each LLM instrumentation package through one scripted scenario against the fake OpenAI.

Instrumentations patch global state (the OpenAI client, the global tracer provider), so each
runs in a fresh process: `run_instrumentation(name, ...)` starts
`python -m tests.instrumentations.harness NAME ...`, which sets the package up as its users do
(exporting OTLP/HTTP protobuf to `<endpoint>/v1/traces` and `/v1/logs` with an `x-api-key`
header, as docs/ingest.md says), runs the scenario under one root span that
carries a user and a session the way that package's users set them, flushes and prints a JSON
summary on its last line.

The scenario is `scenario.py`; how each package is set up, `setups.py`. Content capture is on
wherever the package allows it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_SECONDS = 180


@dataclass(frozen=True)
class Instrumentation:
    name: str
    packages: tuple[str, ...]  # distributions whose versions the capture records
    env: Mapping[str, str] = field(default_factory=dict)  # set before the package is imported
    description: str = ""


_COMMON = ("openai", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")
INSTRUMENTATIONS: dict[str, Instrumentation] = {
    item.name: item
    for item in (
        Instrumentation(
            "openinference",
            ("openinference-instrumentation-openai", "openinference-instrumentation", *_COMMON),
            description="openinference-instrumentation-openai; user and session by using_attributes",
        ),
        Instrumentation(
            "openinference-langchain",
            ("openinference-instrumentation-langchain", "langchain-openai", "langchain-core", *_COMMON),
            description="openinference-instrumentation-langchain over ChatOpenAI/OpenAIEmbeddings",
        ),
        Instrumentation(
            "otel-genai",
            ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai", *_COMMON),
            env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
            description="opentelemetry-instrumentation-openai-v2, default semantic conventions (v1.30)",
        ),
        Instrumentation(
            "otel-genai-latest",
            ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai", *_COMMON),
            env={
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_and_event",
            },
            description="opentelemetry-instrumentation-openai-v2 in its gen_ai_latest_experimental mode",
        ),
        Instrumentation(
            "traceloop",
            ("traceloop-sdk", "opentelemetry-instrumentation-openai", *_COMMON),
            env={
                "TRACELOOP_TRACE_CONTENT": "true",
                "TRACELOOP_METRICS_ENABLED": "false",
                "TRACELOOP_TELEMETRY": "false",
            },
            description="traceloop-sdk (OpenLLMetry); user and session by Traceloop.set_association_properties",
        ),
        Instrumentation(
            "openlit",
            ("openlit", *_COMMON),
            env={"OPENLIT_DISABLE_METRICS": "true"},
            description="openlit; user and session by openlit.using_attributes",
        ),
    )
}


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


# --------------------------------------------------------------------------- the parent side


def run_instrumentation(
    name: str, *, openai_base_url: str, otlp_endpoint: str, otlp_headers: Mapping[str, str], service: str | None = None
) -> dict[str, Any]:
    """Run the scenario of `name` in a fresh interpreter; its summary (trace id, versions...)."""
    instrumentation = INSTRUMENTATIONS[name]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "TRACELOOP_", "OPENLIT_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_"))
    }
    env.update(instrumentation.env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "tests.instrumentations.harness",
        name,
        "--openai-base-url",
        openai_base_url,
        "--otlp-endpoint",
        otlp_endpoint,
        "--service",
        service or f"shop-assistant-{name}",
        *[f"--header={key}={value}" for key, value in otlp_headers.items()],
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"harness {name} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    last = done.stdout.strip().splitlines()[-1]
    summary: dict[str, Any] = json.loads(last)
    summary["stderr_tail"] = done.stderr[-2000:]
    return summary


# --------------------------------------------------------------------------- the child side


def main(argv: list[str] | None = None) -> None:
    from tests.instrumentations.setups import SCENARIOS  # the packages are imported in the child only

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("instrumentation", choices=sorted(SCENARIOS))
    parser.add_argument("--openai-base-url", required=True)
    parser.add_argument("--otlp-endpoint", required=True, help="base URL; /v1/traces and /v1/logs are appended")
    parser.add_argument("--service", required=True)
    parser.add_argument("--header", action="append", default=[], help="KEY=VALUE, sent with every export")
    args = parser.parse_args(argv)
    args.headers = dict(item.split("=", 1) for item in args.header)
    args.otlp_endpoint = args.otlp_endpoint.rstrip("/")
    started = time.time_ns()
    with tempfile.TemporaryDirectory(prefix="instrumentation-") as workdir:
        args.workdir = workdir
        result = SCENARIOS[args.instrumentation](args)
    instrumentation = INSTRUMENTATIONS[args.instrumentation]
    result.update(
        instrumentation=args.instrumentation,
        service=args.service,
        started_ns=started,
        packages=versions(instrumentation.packages),
        env=dict(instrumentation.env),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
