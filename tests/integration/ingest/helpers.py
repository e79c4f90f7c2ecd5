"""An in-process app with ingest on, and what the tests read back: stored rows and counters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.tables import logs, spans
from observatory_api.settings import DatabaseSettings, FeatureSettings, IngestSettings, ServerSettings
from tests.conftest import auth_headers, make_settings


@asynccontextmanager
async def ingest_client(
    database: DatabaseSettings, server: ServerSettings | None = None, **ingest: Any
) -> AsyncIterator[tuple[AsyncTestClient[Any], dict[str, str]]]:
    """A client of an app that accepts OTLP, and the headers of an ingest credential."""
    settings = make_settings(
        database,
        features=FeatureSettings(ingest=True),
        ingest=IngestSettings(**ingest),
        server=server or ServerSettings(),
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield client, auth_headers(settings, "ingest")


async def stored_spans(database: DatabaseSettings, trace_id: str) -> list[dict[str, Any]]:
    engine = create_engine(database, database_url(database))
    try:
        async with engine.connect() as conn:
            statement = select(spans).where(spans.c.trace_id == trace_id).order_by(spans.c.span_id)
            return [dict(row) for row in (await conn.execute(statement)).mappings()]
    finally:
        await engine.dispose()


async def stored_logs(database: DatabaseSettings, service: str) -> list[dict[str, Any]]:
    engine = create_engine(database, database_url(database))
    try:
        async with engine.connect() as conn:
            statement = select(logs).where(logs.c.service_name == service).order_by(logs.c.time)
            return [dict(row) for row in (await conn.execute(statement)).mappings()]
    finally:
        await engine.dispose()


def counter(name: str, **labels: str) -> float:
    """The value of a Prometheus counter series in this process (0 before its first increment)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(item) for item in value)
    return False


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def ingest_warnings() -> Iterator[list[logging.LogRecord]]:
    """The warnings of `observatory_api.ingest` (a handler on that logger: the app configures the root)."""
    handler = _Records()
    logger = logging.getLogger("observatory_api.ingest")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
