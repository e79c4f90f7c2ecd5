"""Print, per capture, what the app answers today next to what the fake server's log says it
should (the numbers of FINDINGS.md): `.venv/bin/python -m tests.instrumentations.report`.

Each capture is replayed into a fresh app on a temporary SQLite database, as the replay tests do.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.settings import DatabaseSettings, FeatureSettings, RateLimitSettings
from tests.conftest import auth_headers, make_settings
from tests.instrumentations.replay import NAMES, PROVIDER, Prices, expected_by_model, expected_totals, exports_at, load


async def _migrate(database: DatabaseSettings) -> None:
    engine = create_engine(database, database_url(database))
    await upgrade(engine, database)
    await engine.dispose()


def _metrics(client: TestClient, window: dict[str, str], metrics: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/metrics/query", json={"metrics": metrics, **window, "source": "raw", **extra})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def report(name: str, folder: Path) -> dict[str, Any]:
    capture = load(name)
    database = DatabaseSettings(sqlite_path=str(folder / f"{name}.db"))
    asyncio.run(_migrate(database))
    settings = make_settings(
        database, features=FeatureSettings(ingest=True), rate_limit=RateLimitSettings(enabled=False)
    )
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=30)).isoformat()}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(settings, "admin"))
        rejected = 0
        for path, body in exports_at(capture):
            answer = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}).json()
            rejected += int((answer.get("partialSuccess") or {}).get("rejectedSpans", 0) or 0)
        prices = {
            e.model_requested: Prices.from_model(client.get(f"/api/v1/models/{PROVIDER}/{e.model_requested}").json())
            for e in capture.exchanges
        }
        exchanges = capture.traced_exchanges()
        expected = expected_by_model(exchanges, prices)
        totals = expected_totals(exchanges, prices)
        by_model = _metrics(
            client,
            window,
            [
                {"id": "request_count"},
                {"id": "error_count"},
                {"id": "cost_usd", "aggregation": "sum", "alias": "cost"},
                {"id": "latency_ms", "aggregation": "p50", "alias": "p50"},
                {"id": "input_tokens", "aggregation": "sum", "alias": "input"},
                {"id": "output_tokens", "aggregation": "sum", "alias": "output"},
            ],
            group_by=["model"],
        )
        users = _metrics(
            client,
            window,
            [{"id": "cost_usd", "aggregation": "sum", "alias": "cost"}],
            group_by=["user_id"],
            order_by="-cost",
            limit=10,
        )
        session = client.get(f"/api/v1/sessions/{capture.session_id}")
        calls = sorted(
            (
                s
                for kind in ("llm", "embedding")
                for s in client.get("/api/v1/spans", params={**window, "kind": kind, "limit": 1000}).json()["data"]
            ),
            key=lambda s: s["start_time"],
        )
        stored = client.get("/api/v1/spans", params={**window, "limit": 1000}).json()["data"]
    return {
        "instrumentation": name,
        "spans_exported": len(capture.spans()),
        "spans_stored": len(stored),
        "rejected": rejected,
        "kinds": sorted({(s["kind"], s["name"]) for s in stored}),
        "app_by_model": {s["group"]["model"]: s["totals"] for s in by_model["series"]},
        "expected_by_model": {
            m: {
                "requests": e.requests,
                "errors": e.errors,
                "cost": e.cost,
                "p50": round(e.p50_latency_ms, 1),
                "input": e.input_tokens,
                "output": e.output_tokens,
            }
            for m, e in expected.items()
        },
        "expected_totals": totals,
        "app_cost_by_user": {s["group"]["user_id"]: s["totals"]["cost"] for s in users["series"]},
        "app_session": session.status_code
        if session.status_code != 200
        else {k: session.json()[k] for k in ("trace_count", "user_id", "input_tokens", "output_tokens", "cost_usd")},
        "calls": [
            {
                "model": c["model"],
                "status": c["status"],
                "user": c["user_id"],
                "session": c["session_id"],
                "ttft": c["time_to_first_token_ms"],
                "cost": c["cost_usd"],
                "in": c["input_tokens"],
                "out": c["output_tokens"],
                "cache": c["cache_read_input_tokens"],
                "reasoning": c["reasoning_output_tokens"],
                "input": bool(c["input"]),
                "output": bool(c["output"]),
                "server_ttfb": round(e.time_to_first_byte_ms, 1) if e.stream else None,
            }
            for c, e in zip(calls, exchanges, strict=False)
        ],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in NAMES:
            print(json.dumps(report(name, Path(folder)), default=str))


if __name__ == "__main__":
    main()
