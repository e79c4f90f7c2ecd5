"""UTCDateTime: aware UTC datetimes on both databases, with no call per value where the driver
already gives them (asyncpg)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect

from observatory_api.db.types import UTCDateTime


def test_asyncpg_values_are_not_processed() -> None:
    dialect = asyncpg_dialect()
    assert UTCDateTime().dialect_impl(dialect).result_processor(dialect, None) is None


def test_sqlite_text_becomes_an_aware_utc_datetime() -> None:
    dialect = aiosqlite_dialect()
    process = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert process is not None
    assert process("2026-12-01 12:00:00.000001") == datetime(2026, 12, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert process(None) is None
