"""db.trace_chunks: the chunk statement is the hypertable one on the chunk, redaction kept."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql

from observatory_api.db import tables
from observatory_api.db.trace_chunks import Chunk, ChunkCatalogue
from observatory_api.traces.repository import _LOGS, _SPANS

DAY = Chunk(
    "_timescaledb_internal", "_hyper_1_7_chunk", datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC)
)
BOUNDS = ("trace_from", "trace_to")
NOON = datetime(2026, 11, 18, 12, tzinfo=UTC)


def _sql(statement: object) -> str:
    return str(statement.compile(dialect=postgresql.asyncpg.dialect()))  # type: ignore[attr-defined]


def test_a_redacted_chunk_statement_keeps_its_nulls_in_place_of_content() -> None:
    catalogue = ChunkCatalogue()
    for rows, hypertable in ((_SPANS, tables.spans), (_LOGS, tables.logs)):
        for allow_content in (True, False):
            statement, _ = rows.of("t" * 32, NOON, NOON, allow_content=allow_content)
            chunk_sql = _sql(catalogue.statement_in(statement, hypertable, DAY, BOUNDS))
            # The same statement with the chunk in place of the hypertable, content NULLs included.
            expected = _sql(statement).replace(f"{hypertable.name}.", '"_timescaledb_internal"."_hyper_1_7_chunk".')
            expected = expected.replace(f"FROM {hypertable.name} ", 'FROM "_timescaledb_internal"."_hyper_1_7_chunk" ')
            # The time bounds behind sub-selects (a generic plan kept, db.trace_chunks).
            expected = expected.replace(
                ">= $2::TIMESTAMP WITH TIME ZONE", ">= (SELECT $2::TIMESTAMP WITH TIME ZONE AS anon_1)"
            )
            expected = expected.replace(
                "<= $3::TIMESTAMP WITH TIME ZONE", "<= (SELECT $3::TIMESTAMP WITH TIME ZONE AS anon_2)"
            )
            # Then the guard: the chunk's range in TimescaleDB's catalogue still the one read.
            guard = (
                " AND (SELECT CAST(CASE WHEN bool_and(ds.range_start = $4::BIGINT AND ds.range_end = $5::BIGINT)"
                " THEN 'true' ELSE 'observatory: the chunk range changed' END AS boolean)"
                " FROM _timescaledb_catalog.dimension_slice ds WHERE ds.chunk_id = $6::INTEGER) ORDER BY"
            )
            expected = expected.replace(" ORDER BY", guard)
            assert chunk_sql == expected
    redacted, _ = _SPANS.of("t" * 32, NOON, NOON, allow_content=False)
    assert "NULL AS input" in _sql(catalogue.statement_in(redacted, tables.spans, DAY, BOUNDS))
    assert catalogue.statement_in(redacted, tables.spans, DAY, BOUNDS) is catalogue.statement_in(
        redacted, tables.spans, DAY, BOUNDS
    )
