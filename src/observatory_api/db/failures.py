"""Which database errors mean "the database cannot answer now" rather than "this is a bug".

The API answers those with 503 and Retry-After (see `errors`); everything else stays a 500.
Recognised by SQLSTATE on PostgreSQL (asyncpg's exceptions carry it, whether SQLAlchemy wrapped
them or the writer's COPY did), by message on SQLite (its errors have no codes), and by type for
what the driver raises unwrapped (its own command timeout, a refused connection, a failed lookup).
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from typing import Literal

from sqlalchemy import exc

Failure = Literal["timeout", "unavailable"]

_TIMEOUT_STATES = {"57014"}  # query_canceled: statement_timeout (or a cancel request)
# The connection is gone or refused: connection exceptions, the server shutting down or starting.
_CONNECTION_CLASSES = ("08", "57P")
# Retrying later can succeed, and so can retrying with less: insufficient resources (too many
# connections, the lock table full), serialization failures and deadlocks.
_RETRYABLE_CLASSES = ("53", "40001", "40P01")
_SQLITE_BUSY = ("database is locked", "database table is locked")
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


def database_failure(error: BaseException) -> Failure | None:
    """What kind of failure ("timeout" or "unavailable") `error` is, if retrying later may
    succeed; None for any other error."""
    if _is_timeout(error):
        return "timeout"
    if _is_connection_failure(error):
        return "unavailable"
    state = sqlstate(error.orig) if isinstance(error, exc.DBAPIError) else None
    if state is not None and state.startswith(_RETRYABLE_CLASSES):
        return "unavailable"
    return None


def blocks_every_batch(error: BaseException) -> bool:
    """Whether `error` would meet any statement now (a timeout, a lost or refused connection), so
    that retrying the batches of a failed group one by one would only meet it again. Not so for a
    deadlock or a full lock table: those a smaller transaction may well get past."""
    return _is_timeout(error) or _is_connection_failure(error)


def _is_timeout(error: BaseException) -> bool:
    # asyncpg's command_timeout raises the built-in TimeoutError, which SQLAlchemy does not wrap.
    if isinstance(error, TimeoutError):
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    cause = error.orig
    if isinstance(cause, sqlite3.OperationalError) and str(cause).startswith(_SQLITE_BUSY):
        return True
    return sqlstate(cause) in _TIMEOUT_STATES


def _is_connection_failure(error: BaseException) -> bool:
    # Refused or reset before SQLAlchemy could wrap it, a host name that does not resolve, a host
    # or network out of reach, or no pooled connection came free in time.
    if isinstance(error, ConnectionError | socket.gaierror | exc.TimeoutError):
        return True
    if isinstance(error, OSError) and error.errno in _UNREACHABLE:
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error.orig, ConnectionError):
        return True
    state = sqlstate(error.orig)
    return state is not None and state.startswith(_CONNECTION_CLASSES)


def sqlstate(cause: BaseException | None) -> str | None:
    # SQLAlchemy's asyncpg adapter keeps the code on its own exception and the asyncpg one as the
    # cause; the writer's COPY wraps asyncpg's exception directly.
    while cause is not None:
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            return state
        cause = cause.__cause__
    return None
