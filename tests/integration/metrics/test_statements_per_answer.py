"""How many statements a percentile answer costs: on plain PostgreSQL a rollup query's raw edges
read a histogram metric's values in their states statement, and a raw query's totals read their
exact percentiles there (metrics/raw_columns.py); SQLite and TimescaleDB keep the statements of
their own. The answers are the ones the values give on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import event

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, FeatureSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.ingest.payloads import encoded, key_values, new_trace_id, span, trace_request

URL = "/api/v1/metrics/query"
ATTRIBUTES = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}


def llm_call(at: datetime, index: int, seconds: int) -> Any:
    """A chat call of gpt-4o that started at `at` and lasted `seconds`."""
    start = int(at.timestamp() * 1e9)
    end = start + seconds * 1_000_000_000
    return span(
        new_trace_id(), index, start_time_unix_nano=start, end_time_unix_nano=end, attributes=key_values(ATTRIBUTES)
    )


async def _answers(settings: DatabaseSettings, bodies: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, list[str]]]]:
    """Each body's answer and the statements it ran, from an app without a segment cache; and the backend."""
    app_settings = make_settings(settings, features=FeatureSettings(ingest=False))
    reader = auth_headers(app_settings, "developer")
    found = []
    async with AsyncTestClient(create_app(app_settings)) as client:
        resources = client.app.state.resources
        statements: list[str] = []
        event.listen(resources.read_engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        for body in bodies:
            statements.clear()
            response = await client.post(URL, json=body, headers=reader)
            assert response.status_code == 200, response.text
            found.append((response.json(), list(statements)))
        return resources.capabilities.backend, found


async def test_percentiles_cost_one_statement_less_on_plain_postgresql(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, features=FeatureSettings(ingest=True))
    writer = auth_headers(settings, "ingest")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3, seconds=-30)
    end = start + timedelta(hours=2)
    # Two calls, 1 s and 3 s, in the raw edges only (seconds before the first whole minute, after
    # the last): a rollup answer's percentile then comes from the edges' values alone.
    async with AsyncTestClient(create_app(settings)) as client:
        calls = [llm_call(start + timedelta(seconds=10), 0, 1), llm_call(end - timedelta(seconds=5), 1, 3)]
        content, headers = encoded(trace_request(calls), "protobuf")
        sent = await client.post("/v1/traces", content=content, headers={**writer, **headers})
        assert sent.status_code == 200, sent.text
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "metrics": [{"id": "request_count"}, {"id": "latency_ms", "aggregation": "p50"}],
    }
    backend, found = await _answers(
        migrated_database,
        [{**body, "source": "rollup"}, {**body, "source": "raw"}, {**body, "source": "raw", "group_by": ["model"]}],
    )
    (rollup, rollup_statements), (raw, raw_statements), (grouped, grouped_statements) = found

    assert rollup["source"].startswith("rollup_")
    assert rollup["totals"]["request_count_count"] == 2
    assert abs(rollup["totals"]["latency_ms_p50"] - 2000.0) <= 0.05 * 2000.0  # the histogram's bound
    assert raw["totals"] == {"request_count_count": 2, "latency_ms_p50": 2000.0}
    assert grouped["series"][0]["totals"] == raw["totals"]
    # The raw edges' values: a statement of their own (selecting `... AS v`), except on plain PostgreSQL.
    values_read = [s for s in rollup_statements if " AS v \n" in s]
    percentiles_read = [s for s in raw_statements if "percentile_cont" in s or "row_number" in s]
    if backend == "postgresql":
        assert not values_read
        assert len(rollup_statements) == 2, rollup_statements  # the rollup parts, both raw edges
        assert len(raw_statements) == 1, raw_statements  # states and percentiles in one scan
        assert "percentile_cont" in raw_statements[0]
        # Grouped, the states and the percentiles of the series and of the totals, as before:
        # in one statement, percentile_cont would sort the groups (a float sum in another order).
        assert len(grouped_statements) == 3
    else:
        assert values_read
        assert len(raw_statements) == 2, raw_statements
        assert len(percentiles_read) == 1
