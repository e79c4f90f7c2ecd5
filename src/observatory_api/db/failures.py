"""Which database errors mean "the database cannot answer now" rather than "this is a bug".

The API answers those with 503 and Retry-After (see `errors`); everything else stays a 500.
Recognised by SQLSTATE on PostgreSQL (asyncpg's exceptions carry it, whether SQLAlchemy wrapped
them or the writer's COPY did) and by message on SQLite, whose errors have no codes.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from sqlalchemy import exc

Failure = Literal["timeout", "unavailable"]

_TIMEOUT_STATES = {"57014"}  # query_canceled: statement_timeout (or a cancel request)
# Retrying later can succeed: connection exceptions, insufficient resources (too many
# connections), the server shutting down or starting, serialization failures and deadlocks.
_UNAVAILABLE_CLASSES = ("08", "53", "57P", "40001", "40P01")
_SQLITE_BUSY = ("database is locked", "database table is locked")


def database_failure(error: BaseException) -> Failure | None:
    """ "timeout" or "unavailable" for an error worth retrying later; None for any other."""
    if isinstance(error, exc.TimeoutError):  # no pooled connection came free in time
        return "unavailable"
    if isinstance(error, ConnectionError):  # refused or reset before SQLAlchemy could wrap it
        return "unavailable"
    if not isinstance(error, exc.DBAPIError):
        return None
    cause = error.orig
    if isinstance(cause, sqlite3.OperationalError) and str(cause).startswith(_SQLITE_BUSY):
        return "timeout"
    state = _sqlstate(cause)
    if state in _TIMEOUT_STATES:
        return "timeout"
    if error.connection_invalidated or isinstance(cause, ConnectionError):
        return "unavailable"
    if state is not None and state.startswith(_UNAVAILABLE_CLASSES):
        return "unavailable"
    return None


def _sqlstate(cause: BaseException | None) -> str | None:
    # SQLAlchemy's asyncpg adapter keeps the code on its own exception and the asyncpg one as the
    # cause; the writer's COPY wraps asyncpg's exception directly.
    while cause is not None:
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            return state
        cause = cause.__cause__
    return None
