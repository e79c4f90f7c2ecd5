"""The rollup statements' histogram columns: one `bigint[]` on PostgreSQL (decoded by the driver, not
160 columns a row in Python), each bin summed by `metric_bin_sum` (a strict bigint sum, migration 0013)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy.dialects import postgresql, sqlite

from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.metrics.histogram import BINS
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.schemas import MetricQuery
from observatory_api.metrics.sql import rollup_source, states_statement
from observatory_api.settings import QuerySettings

END = datetime(2026, 11, 20, tzinfo=UTC)


def statement_sql(grain: str, backend: str) -> tuple[list[str], str]:
    body = {
        "metrics": [{"id": "request_count"}, {"id": "latency_ms", "aggregation": "p95"}],
        "interval": grain,
        "from": END - timedelta(days=1),
        "to": END,
        "source": "rollup",
    }
    plan = plan_query(msgspec.convert(body, MetricQuery), QuerySettings(), allow_content=False)
    capabilities = DatabaseCapabilities(backend)  # type: ignore[arg-type]
    statement = states_statement(plan, rollup_source(plan, grain, capabilities), with_bucket=True)
    dialect = sqlite.dialect() if backend == "sqlite" else postgresql.dialect()
    return list(statement.selected_columns.keys()), str(statement.compile(dialect=dialect))


@pytest.mark.parametrize("grain", ["minute", "hour", "day"])
def test_postgresql_reads_the_bins_as_one_array(grain: str) -> None:
    names, sql = statement_sql(grain, "postgresql")
    assert "latency_ms:h" in names
    assert not any(name.startswith("latency_ms:h") and name != "latency_ms:h" for name in names)
    assert "ARRAY[" in sql
    # every grain: no cast per bin (an int4 raised past 2^31), no NUMERIC sum (a bigint's)
    assert sql.count("coalesce(metric_bin_sum(") == BINS
    assert "AS INTEGER" not in sql
    assert not re.search(r"\bsum\([^)]*_h\d{3}", sql)


def test_sqlite_reads_a_column_per_bin() -> None:
    names, _ = statement_sql("minute", "sqlite")
    assert [n for n in names if n.startswith("latency_ms:h")] == [f"latency_ms:h{i}" for i in range(BINS)]
