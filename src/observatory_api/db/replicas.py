"""The read path over streaming replicas: round robin among the healthy ones, the primary otherwise.

One async engine per replica (the read engine's pool options) serves reads; a one-connection probe
engine per replica, and one on the primary, serve the health check, so a busy pool never makes a
replica look dead. A replica is in the rotation while it answers and is at most
`database.max_replica_lag_seconds` behind (replica_lag.py); a read that meets a lost connection
takes it out at once, and the next check that finds it well puts it back. Writes, API keys and
token state never come here: they keep the primary's engines (docs/replicas.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from sqlalchemy import event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.background import background_task
from observatory_api.db.failures import database_failure
from observatory_api.db.replica_lag import PrimaryPositions, parse_lsn, replica_lag

logger = logging.getLogger("observatory_api.replicas")
PROBE_TIMEOUT_SECONDS = 2.0
ReplicaStatus = Literal["ok", "lagging", "down"]

# The replica's own view: how much it has replayed, and its replay delay. The delay is 0 when it
# has replayed all it received; otherwise the age of the last transaction it replayed, which
# overstates the lag after the primary was idle (hence replica_lag.py, against the primary).
REPLICA_CHECK = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)
PRIMARY_POSITION = text("SELECT pg_current_wal_flush_lsn()::text")


class ReplicaState(msgspec.Struct, omit_defaults=True):
    """A replica as `/ready` shows it: `host:port`, never its URL (which may hold a password)."""

    replica: str
    status: ReplicaStatus
    lag_seconds: float | None = None
    detail: str | None = None


@dataclass
class Replica:
    name: str
    engine: AsyncEngine
    probe: AsyncEngine
    status: ReplicaStatus = "down"
    lag_seconds: float | None = None
    detail: str | None = "not checked yet"
    # Monotonic time up to which the replica is known to hold all the primary had (the check's
    # start minus the lag it measured): what it serves now is at most `now - holds_until` old.
    holds_until: float = float("-inf")

    def state(self) -> ReplicaState:
        lag = None if self.lag_seconds is None else round(self.lag_seconds, 3)
        return ReplicaState(replica=self.name, status=self.status, lag_seconds=lag, detail=self.detail)


@dataclass
class ReadAttempt:
    """One request's reads: whether they must go to the primary (the retry), and whether a replica
    failed them (then the answer is thrown away and the request retried: read_fallback.py)."""

    on_primary: bool = False
    replica_failed: bool = False


READ_ATTEMPT: ContextVar[ReadAttempt | None] = ContextVar("observatory_read_attempt", default=None)


def replica_name(url: str | URL) -> str:
    """`host:port` of a replica URL: what logs, `/ready` and metric labels show."""
    parsed = make_url(url) if isinstance(url, str) else url
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


@dataclass
class ReadRouter:
    primary: AsyncEngine
    replicas: Sequence[Replica]
    max_lag_seconds: float
    check_interval_seconds: float
    # The primary's one-connection probe, for its WAL position; None: lag from the replicas alone.
    primary_probe: AsyncEngine | None = None
    # Called after every change of a replica's state (metrics).
    on_change: Callable[[Replica], None] = lambda _replica: None
    _turn: int = 0
    _positions: PrimaryPositions = field(default_factory=PrimaryPositions)

    def __post_init__(self) -> None:
        for replica in self.replicas:
            event.listen(replica.engine.sync_engine, "handle_error", self._error_listener(replica))
            # A refused connection never reaches handle_error (the driver's OSError is not a DBAPI
            # error): the connect itself is watched.
            event.listen(replica.engine.sync_engine, "do_connect", self._connect_watcher(replica))
            self.on_change(replica)

    def engine(self) -> AsyncEngine:
        """The engine for the next read: the healthy replicas in turn, else the primary."""
        attempt = READ_ATTEMPT.get()
        if attempt is not None and attempt.on_primary:
            return self.primary
        # Between checks the lag may only have grown, by the time since: a replica whose bound would
        # be passed by now is skipped before the next check takes it out.
        oldest = time.monotonic() - self.max_lag_seconds
        healthy = [replica for replica in self.replicas if replica.status == "ok" and replica.holds_until >= oldest]
        if not healthy:
            return self.primary
        self._turn += 1
        return healthy[self._turn % len(healthy)].engine

    def holds_until(self, engine: AsyncEngine) -> float:
        """The monotonic time up to which `engine` is known to hold every commit of the primary:
        now for the primary itself (inf), the last check's finding for a replica."""
        for replica in self.replicas:
            if replica.engine is engine:
                return replica.holds_until
        return float("inf")

    def states(self) -> list[ReplicaState]:
        return [replica.state() for replica in self.replicas]

    def take_out(self, replica: Replica, detail: str) -> None:
        if replica.status != "down":
            logger.warning("replica %s taken out of the read rotation: %s", replica.name, detail)
        replica.status, replica.detail = "down", detail
        self.on_change(replica)

    async def check(self) -> None:
        """Record the primary's WAL position, then check every replica at once."""
        await self._sample_primary()
        await asyncio.gather(*(self._check_replica(replica) for replica in self.replicas))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Checked once before the app serves, then every `check_interval_seconds` until exit."""
        await self.check()
        async with background_task(self._loop(), name="observatory-replica-check"):
            yield

    async def dispose(self) -> None:
        for replica in self.replicas:
            await replica.engine.dispose()
            await replica.probe.dispose()
        if self.primary_probe is not None:
            await self.primary_probe.dispose()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_seconds)
            try:
                await self.check()
            except Exception:  # never let the loop die: the replicas would stay as they were
                logger.exception("replica check failed")

    async def _sample_primary(self) -> None:
        if self.primary_probe is None:
            return
        # The time before asking: every commit flushed by then is at or below the position read
        # (the metric segment cache relies on `holds_until` never being later than that).
        asked = time.monotonic()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), self.primary_probe.connect() as connection:
                position = (await connection.execute(PRIMARY_POSITION)).scalar_one()
        except Exception as exc:
            logger.warning("could not read the primary's WAL position (%s)", type(exc).__name__)
            return
        self._positions.record(asked, parse_lsn(position))

    async def _check_replica(self, replica: Replica) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), replica.probe.connect() as connection:
                row = (await connection.execute(REPLICA_CHECK)).one()
        except Exception as exc:
            replica.lag_seconds = None
            self.take_out(replica, f"unreachable ({type(exc).__name__})")
            return
        in_recovery, replayed, delay = row
        if not in_recovery:
            # Promoted, or a primary named as a replica: its data may part from the primary's.
            replica.lag_seconds = None
            self.take_out(replica, "not a standby (pg_is_in_recovery() is false)")
            return
        lag = replica_lag(
            self._positions if self.primary_probe is not None else None,
            None if replayed is None else parse_lsn(replayed),
            None if delay is None else float(delay),
            time.monotonic(),
        )
        replica.lag_seconds = lag
        replica.holds_until = float("-inf") if lag is None else started - lag
        if lag is None or lag > self.max_lag_seconds:
            behind = "unknown" if lag is None else f"{lag:.1f} s"
            replica.status, replica.detail = "lagging", f"behind by {behind}, more than {self.max_lag_seconds:g} s"
        else:
            if replica.status != "ok":
                logger.info("replica %s back in the read rotation (lag %.1f s)", replica.name, lag)
            replica.status, replica.detail = "ok", None
        self.on_change(replica)

    def _error_listener(self, replica: Replica) -> Callable[[ExceptionContext], None]:
        def on_error(context: ExceptionContext) -> None:
            error: BaseException = context.sqlalchemy_exception or context.original_exception
            self._failed(replica, error, context.original_exception)

        return on_error

    def _connect_watcher(self, replica: Replica) -> Callable[..., Any]:
        def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            try:
                return dialect.connect(*cargs, **cparams)
            except Exception as exc:
                self._failed(replica, exc, exc)
                raise

        return connect

    def _failed(self, replica: Replica, error: BaseException, cause: BaseException) -> None:
        if database_failure(error) != "unavailable":
            return  # a bug or a timeout is the query's, not the replica's
        attempt = READ_ATTEMPT.get()
        if attempt is not None:
            attempt.replica_failed = True
        self.take_out(replica, f"a read failed ({type(cause).__name__})")


def build_read_router(
    primary: AsyncEngine,
    replica_urls: Sequence[URL],
    make_engine: Callable[..., AsyncEngine],
    *,
    primary_url: URL,
    max_lag_seconds: float,
    check_interval_seconds: float,
    on_change: Callable[[Replica], None],
) -> ReadRouter:
    """A router over `replica_urls`; `make_engine(url, pool_size=..., max_overflow=...)` builds
    each engine (the read engine's options unless told)."""
    replicas = []
    for url in replica_urls:
        engine = make_engine(url)
        probe = make_engine(url, pool_size=1, max_overflow=0)
        replicas.append(Replica(name=replica_name(url), engine=engine, probe=probe))
    return ReadRouter(
        primary=primary,
        replicas=replicas,
        max_lag_seconds=max_lag_seconds,
        check_interval_seconds=check_interval_seconds,
        primary_probe=make_engine(primary_url, pool_size=1, max_overflow=0) if replicas else None,
        on_change=on_change,
    )
