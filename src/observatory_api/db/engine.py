"""Engines for the configured database: the read engine the API uses, and an owner engine for writes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from observatory_api.db.revisions import current_revision, head_revision
from observatory_api.settings import DatabaseSettings


def database_url(settings: DatabaseSettings) -> URL:
    """The owner URL, with the async driver: the documented `postgresql://` form works as given."""
    if settings.url is None:
        return make_url(f"sqlite+aiosqlite:///{Path(settings.sqlite_path).resolve()}")
    url = make_url(settings.url)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+asyncpg")
        # libpq's sslmode is spelled ssl for asyncpg.
        if "sslmode" in url.query:
            query = dict(url.query)
            query["ssl"] = query.pop("sslmode")
            url = url.set(query=query)
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    return url


def readonly_url(settings: DatabaseSettings) -> URL:
    """The URL the read path uses: the read-only role when one is configured."""
    url = database_url(settings)
    if url.get_backend_name() == "postgresql" and settings.readonly_user:
        url = url.set(username=settings.readonly_user, password=settings.readonly_password)
    return url


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def create_engine(
    settings: DatabaseSettings,
    url: URL,
    *,
    readonly: bool = False,
    read_write: bool = False,
    application_name: str = "observatory-api",
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> AsyncEngine:
    """An async engine with bounded pools (`database.pool_size` unless given) and per-dialect
    session settings.

    `readonly` makes SQLite connections refuse writes (`query_only`); on PostgreSQL the read-only
    role of `readonly_url` does that job, and its statements run without BEGIN and ROLLBACK around
    them (autocommit: each is its own read-only transaction, which is what READ COMMITTED gave
    every statement anyway); a page of spans was 3 round trips where 1 does. `read_write` lifts a
    role's `default_transaction_read_only` (the role of create_readonly_role.sql has it on; its
    grants still decide what it may write).
    """
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 15}, json_deserializer=decode_json)
        on_connect = _sqlite_read_only_on_connect if readonly else _sqlite_on_connect
        limit = settings.sqlite_memory_mib * 1024 * 1024

        def connect(dbapi_connection: Any, record: Any) -> None:
            on_connect(dbapi_connection, record)
            # Process-wide (every connection of the worker, both engines): SQLite frees cached
            # pages to stay under it. Each connection's cache_size alone bounded nothing: a
            # worker's ~15 pooled connections and its writer could each hold 64 MiB.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA soft_heap_limit={limit}")
            cursor.close()

        event.listen(engine.sync_engine, "connect", connect)
        event.listen(engine.sync_engine.pool, "checkout", _sqlite_cache_on_checkout)
        return engine
    server_settings = {
        "application_name": application_name,
        "statement_timeout": str(settings.statement_timeout_ms),
        "timezone": "UTC",
    }
    if read_write:
        server_settings["default_transaction_read_only"] = "off"
    connect_args: dict[str, Any] = {
        "server_settings": server_settings,
        "command_timeout": settings.statement_timeout_ms / 1000 + 5,
    }
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if readonly else {}
    engine = create_async_engine(
        url,
        pool_size=settings.pool_size if pool_size is None else pool_size,
        max_overflow=settings.max_overflow if max_overflow is None else max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        connect_args=connect_args,
        json_deserializer=decode_json,
        **options,
    )
    ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


# A connection back in the pool for longer than this is pinged before it is handed out again.
# SQLAlchemy's `pool_pre_ping` pings on every checkout: with asyncpg that was 3 round trips
# (BEGIN, `;`, ROLLBACK) per request, more than the request's own query. A connection in steady
# use has just answered; one that sat idle may have been closed by the server (a restart, an
# idle timeout, a failover), and it is checked as before. A server that goes away under a busy
# connection fails one statement, which invalidates the pool (the next checkouts reconnect).
PING_AFTER_IDLE_SECONDS = 1.0
_CHECKED_IN = "observatory_checked_in"


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout when it was idle for more than `idle_seconds`; a
    connection that does not answer is replaced (the pool retries the checkout)."""
    pool = engine.sync_engine.pool

    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_CHECKED_IN, None)
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise exc.DisconnectionError("the pooled connection did not answer a ping") from error

    event.listen(pool, "checkin", checked_in)
    event.listen(pool, "checkout", checkout)


def decode_json(text: str | bytes) -> Any:
    """Stored JSON (attributes, events) as read: msgspec decodes it several times faster than
    `json.loads`; what it refuses (`NaN`, which `json.dumps` writes) goes to `json.loads`."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


async def migrated_owner_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The owner engine of the operator commands (`keys`, `models`, ...), with the schema upgraded to head."""
    from observatory_api.db.migrate import upgrade  # Alembic: the operator commands only

    engine = create_engine(settings, database_url(settings), application_name="observatory-cli")
    await upgrade(engine, settings)
    return engine


async def upgrade_if_embedded(settings: DatabaseSettings) -> None:
    """Bring the embedded SQLite database to head (the server's start-up), so one command on a
    fresh machine works; a PostgreSQL schema is left to `observatory-api migrate`. A database
    already at head (every start but the first) is left without importing Alembic."""
    url = database_url(settings)
    if not is_sqlite(url):
        return
    owner = create_engine(settings, url)
    try:
        async with owner.connect() as connection:
            if await current_revision(connection) == head_revision():
                return
        from observatory_api.db.migrate import upgrade

        await upgrade(owner, settings)
    finally:
        await owner.dispose()


# SQLite's page cache, per connection (KiB). Reads keep a large one: pages a query reads again
# (indexes, the recent rows) stay in memory. An export reads every page once: its connection
# keeps a small one, or the first export fills the whole cache (~64 MB of the ~92 MB a first
# NDJSON export grew the server by: bench/RESULTS.md) for nothing the next reads need.
CACHE_KIB = 65_536
EXPORT_CACHE_KIB = 2_048
_export_cache: ContextVar[bool] = ContextVar("observatory_sqlite_export_cache", default=False)
_CACHE_SIZE = "observatory_cache_kib"


@contextmanager
def export_cache() -> Iterator[None]:
    """SQLite connections checked out inside this block (in this task) have the export's small
    page cache; the next ordinary checkout of the same connection gives it back the large one.
    Nothing on PostgreSQL."""
    token = _export_cache.set(True)
    try:
        yield
    finally:
        _export_cache.reset(token)


def _sqlite_cache_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # The contextvar reaches here: SQLAlchemy runs the checkout in a greenlet that shares the
    # awaiting task's context.
    wanted = EXPORT_CACHE_KIB if _export_cache.get() else CACHE_KIB
    if record.info.get(_CACHE_SIZE, CACHE_KIB) == wanted:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size=-{wanted}")  # a smaller size frees the pages over it
    cursor.close()
    record.info[_CACHE_SIZE] = wanted


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    # WAL lets readers and a writer work at once; NORMAL sync is safe with WAL and much faster.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.close()
    record.info[_CACHE_SIZE] = CACHE_KIB


def _sqlite_read_only_on_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_on_connect(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def pooled_connections(engine: AsyncEngine, wanted: int) -> int:
    """How many of `wanted` connections `engine` can hold open at once: its pool size (at least
    one), and one on SQLite, whose writers take turns anyway."""
    if engine.dialect.name == "sqlite":
        return 1
    size = getattr(engine.pool, "size", None)
    return max(1, min(wanted, size() if callable(size) else 1))
