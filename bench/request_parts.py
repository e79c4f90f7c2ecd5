"""The per-request parts issue 21 made cheaper, each timed alone: microseconds of CPU per call.

    .venv/bin/python bench/request_parts.py --base /work/wt/perf-base

Under a loaded machine the whole request's CPU moves by more than these parts weigh; alone, the
best of `--repeats` loops of `--calls` calls each is steady. Parts: accepting an access token
(`Authenticator.decode`, the same token each call, as a client sends it), the security headers
hook on a response start, the in-memory rate-limit count (`MemorySecurityStore.hit`, two buckets)
and the request metrics plus access log record (`ObservabilityMiddleware._record`, INFO to
/dev/null). With `--base`, the same script runs under the other checkout in turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from checkout_children import alternated, with_base

from observatory_api.observability.middleware import ObservabilityMiddleware
from observatory_api.security.headers import security_headers_hook
from observatory_api.security.setup import build_security
from observatory_api.security.store import MemorySecurityStore
from observatory_api.settings import AuthSettings, SecurityHeadersSettings, Settings

SECRET = "bench-request-parts-jwt-secret-0123456789abcdefghijkl"


def best(call: Callable[[], Any], calls: int, repeats: int) -> float:
    """Microseconds per call, the best of `repeats` loops."""
    found = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            call()
        found.append((time.process_time() - started) / calls * 1e6)
    return min(found)


def measure(calls: int, repeats: int) -> dict[str, float]:
    settings = Settings(environment="test", auth=AuthSettings(jwt_secret=SECRET, secret_key=SECRET))
    authenticator = build_security(settings).state["authenticator"]
    token = authenticator.tokens.issue(subject="bench", role="developer", kind="access").token
    hook = security_headers_hook(SecurityHeadersSettings())
    scope = {"type": "http", "path": "/api/v1/spans", "method": "GET"}
    headers = [(b"content-type", b"application/json"), (b"content-length", b"5691"), (b"vary", b"Accept-Encoding")]
    loop = asyncio.new_event_loop()
    store = MemorySecurityStore("bench")
    buckets = [(store.key("ratelimit", "caller", "key:abc"), 10**9), (store.key("ratelimit", "ip", "10.0.0.1"), 10**9)]
    logging.basicConfig(stream=open(os.devnull, "w"), level=logging.INFO)  # noqa: SIM115
    middleware = ObservabilityMiddleware(None, api_prefix="/api/v1", known_roles=frozenset({"developer"}))  # type: ignore[arg-type]
    handler = type("Handler", (), {})()
    record_scope = {**scope, "path_template": "/api/v1/spans", "route_handler": handler, "user": None}

    def awaited(make: Callable[[], Awaitable[Any]]) -> Callable[[], None]:
        """`calls` awaits in one task per loop of `best`: the event loop's round is not counted."""

        async def many() -> None:
            for _ in range(calls):
                await make()

        return lambda: loop.run_until_complete(many())

    def start() -> dict[str, Any]:
        return {"type": "http.response.start", "status": 200, "headers": list(headers)}

    return {
        "accept an access token": best(lambda: authenticator.decode(token, "access"), calls, repeats),
        "security headers": best(awaited(lambda: hook(start(), scope)), 1, repeats) / calls,
        "rate-limit count (memory)": best(awaited(lambda: store.hit(buckets, 60)), 1, repeats) / calls,
        "request metrics + access log": best(
            lambda: middleware._record(record_scope, "rid", 200, 0.003),  # type: ignore[arg-type]
            calls,
            repeats,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="another checkout (with its .venv) to measure beside this one")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.calls, args.repeats)))
        return
    pythons = with_base(Path(__file__).resolve().parent.parent, args.base)
    child_args = ["--calls", str(args.calls), "--repeats", str(args.repeats)]
    samples = alternated(__file__, pythons, args.rounds, child_args)
    found = {name: {part: min(values) for part, values in parts.items()} for name, parts in samples.items()}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; best of {args.rounds} x {args.repeats} loops")
    names = list(pythons)
    print("| part | " + " | ".join(f"{name} µs/call" for name in names) + " |")
    print("| --- |" + " --- |" * len(names))
    for part in found["ours"]:
        print(f"| {part} | " + " | ".join(f"{found[name][part]:.1f}" for name in names) + " |")


if __name__ == "__main__":
    main()
