"""What the database can do, decided once at start-up and passed to what depends on it.

The lifespan (and the CLI's writers) ask the database once, before the first query compiles, and
hand the answer to the repositories, the writer and the SQL builders that differ by it: TimescaleDB
buckets with `time_bucket` and narrows keyset pages on its compressed chunks; its continuous
aggregates, when all are present, replace the rollup tables.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("observatory_api.db")

Backend = Literal["sqlite", "postgresql", "timescaledb"]

_TIMESCALEDB_INSTALLED = text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
_REPORTED_AGGREGATES = text(
    "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema()"
)


@dataclass(frozen=True, slots=True)
class DatabaseCapabilities:
    """The backend, and whether TimescaleDB reports every continuous aggregate the metrics read."""

    backend: Backend
    continuous_aggregates: bool = False

    @property
    def timescaledb(self) -> bool:
        return self.backend == "timescaledb"

    @property
    def dialect_name(self) -> Literal["sqlite", "postgresql"]:
        """The SQLAlchemy dialect's name: TimescaleDB is PostgreSQL."""
        return "sqlite" if self.backend == "sqlite" else "postgresql"

    @classmethod
    def plain(cls, engine: AsyncEngine) -> DatabaseCapabilities:
        """SQLite or PostgreSQL without TimescaleDB's extras: what `engine`'s dialect alone says."""
        return cls("sqlite" if engine.dialect.name == "sqlite" else "postgresql")


async def detect_capabilities(
    engine: AsyncEngine, *, continuous_aggregates: Collection[str] = ()
) -> DatabaseCapabilities:
    """Ask the database behind `engine`: is TimescaleDB installed, and does it report every view
    named in `continuous_aggregates` (in the current schema)? A failed check answers "no", with a
    warning: the plain path works everywhere, only slower."""
    if engine.dialect.name != "postgresql":
        return DatabaseCapabilities("sqlite")
    try:
        async with engine.connect() as connection:
            installed = (await connection.execute(_TIMESCALEDB_INSTALLED)).first() is not None
    except Exception:
        logger.warning("could not check for TimescaleDB; assuming plain PostgreSQL")
        return DatabaseCapabilities("postgresql")
    if not installed:
        return DatabaseCapabilities("postgresql")
    return DatabaseCapabilities("timescaledb", await reports_continuous_aggregates(engine, continuous_aggregates))


async def reports_continuous_aggregates(engine: AsyncEngine, views: Collection[str]) -> bool:
    """Whether TimescaleDB reports every continuous aggregate of `views` in the current schema.

    `detect_capabilities` asks only when TimescaleDB is installed (plain PostgreSQL has no
    `timescaledb_information`). When the check fails, or only some exist, the answer is no.
    """
    if not views:
        return False
    try:
        async with engine.connect() as connection:
            reported = set((await connection.scalars(_REPORTED_AGGREGATES)).all())
    except Exception:
        logger.warning("could not list the continuous aggregates; reading the rollup tables")
        return False
    missing = sorted(set(views) - reported)
    if missing:
        logger.warning("continuous aggregates missing (%s); reading the rollup tables", ", ".join(missing))
        return False
    return True
