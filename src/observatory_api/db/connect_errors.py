"""One line for the database problems an operator meets first (no role, no database, no server),
instead of the driver's traceback through SQLAlchemy and Alembic."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import asyncpg

from observatory_api.settings import DatabaseSettings

_CREATE_HINT = (
    "docs/configuration.md#running-against-postgresql-and-redis shows how to create the role and the database"
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]


def connection_problem(error: BaseException, settings: DatabaseSettings) -> str | None:
    """The line to print for `error` when it is one of those first problems, else None."""
    where = _where(settings)
    for cause in _chain(error):
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return f"cannot connect to {where}: {cause} ({_CREATE_HINT})"
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return f"cannot connect to {where}: {cause} ({_CREATE_HINT})"
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return f"cannot connect to {where}: {cause} (check the password in DATABASE_URL)"
        if isinstance(cause, socket.gaierror):
            return f"cannot connect to {where}: the host name does not resolve ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError | TimeoutError):
            return f"cannot connect to {where}: {cause.strerror or 'timed out'} (is PostgreSQL running there?)"
    return None


def _where(settings: DatabaseSettings) -> str:
    from sqlalchemy.engine import make_url

    if not settings.url:
        return f"SQLite {settings.sqlite_path}"
    url = make_url(settings.url)
    return f"PostgreSQL at {url.host}:{url.port or 5432}, database {url.database!r} as {url.username!r}"
