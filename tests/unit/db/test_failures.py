"""database_failure: which database errors are answered 503 (retry later), which stay 500s."""

from __future__ import annotations

import errno
import socket
import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc

from observatory_api.db.failures import blocks_every_batch, database_failure


def wrapped(cause: BaseException, **kwargs: bool) -> exc.DBAPIError:
    return exc.DBAPIError("SELECT 1", None, cause, **kwargs)


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (wrapped(asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")), "timeout"),
        (wrapped(sqlite3.OperationalError("database is locked")), "timeout"),
        (wrapped(asyncpg.exceptions.TooManyConnectionsError("too many clients")), "unavailable"),
        (wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")), "unavailable"),
        (wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")), "unavailable"),
        (wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")), "unavailable"),
        (wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed")), "unavailable"),
        (wrapped(OSError("broken"), connection_invalidated=True), "unavailable"),
        (wrapped(asyncpg.exceptions.OutOfMemoryError("out of shared memory")), "unavailable"),
        (exc.TimeoutError("QueuePool limit reached"), "unavailable"),
        (ConnectionRefusedError(111, "Connection refused"), "unavailable"),
        (socket.gaierror(-2, "Name or service not known"), "unavailable"),
        (TimeoutError(), "timeout"),  # asyncpg's command_timeout, unwrapped
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unavailable"),
        (OSError(errno.ENOENT, "No such file or directory"), None),
        (PermissionError(errno.EACCES, "Permission denied"), None),
        # Bugs, not outages: a 500 with the request id.
        (wrapped(asyncpg.exceptions.UndefinedColumnError('column "x" does not exist')), None),
        (wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")), None),
        (wrapped(sqlite3.OperationalError("no such table: spans")), None),
        (ValueError("not a database error"), None),
    ],
)
def test_classification(error: BaseException, failure: str | None) -> None:
    assert database_failure(error) == failure


def test_the_code_is_found_behind_a_wrapper() -> None:
    # SQLAlchemy's asyncpg adapter raises its own exception with asyncpg's as the cause.
    inner = asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")
    outer = RuntimeError("adapted")
    outer.__cause__ = inner
    assert database_failure(wrapped(outer)) == "timeout"


@pytest.mark.parametrize(
    ("error", "blocks"),
    [
        (wrapped(asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")), True),
        (TimeoutError(), True),
        (wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")), True),
        (exc.TimeoutError("QueuePool limit reached"), True),
        # A smaller transaction may get past these: the group's batches are retried one by one.
        (wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")), False),
        (wrapped(asyncpg.exceptions.OutOfMemoryError("out of shared memory")), False),
        (wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")), False),
        (ValueError("bad batch"), False),
    ],
)
def test_what_blocks_every_batch_of_a_group(error: BaseException, blocks: bool) -> None:
    assert blocks_every_batch(error) is blocks
