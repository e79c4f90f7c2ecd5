"""Token revocation: the token families logged out or caught reusing a refresh token.

The state lives in the database (`revoked_token_families`, `refresh_token_uses`; see
revocation_repository.py), never in Redis, so that no eviction, flush or restart brings a token
back. Checking an access token costs no database round trip: each worker holds the revoked
families in memory, loaded before it serves and refreshed every `auth.revocation_refresh_seconds`
with the rows revoked since its last read (less OVERLAP, so that a transaction committed late is
not missed). The worker that writes a revocation knows it at once; the others within one refresh.

Failing closed: when the list has not been refreshed for `auth.revocation_max_staleness_seconds`,
access tokens are refused with 503 (API keys are not affected); logout and refresh answer 503 when
the database cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from litestar import Litestar
from sqlalchemy.exc import SQLAlchemyError

from observatory_api.core.errors import Unavailable
from observatory_api.db.engine import create_engine, database_url
from observatory_api.errors import DATABASE_RETRY_AFTER
from observatory_api.observability.metrics import auth_revocation_refresh_failures_total
from observatory_api.security.revocation_repository import (
    RefreshUse,
    RevocationReason,
    RevocationRepository,
    RevokedFamily,
)
from observatory_api.settings import AuthSettings, Settings

logger = logging.getLogger("observatory_api.security.revocation")
# Longer than any revocation transaction takes from its first statement to its commit.
OVERLAP = timedelta(seconds=30)
PRUNE_SECONDS = 600.0
READ_TIMEOUT_SECONDS = 5.0
# The revocation engine's pool, per worker: a read per second, and logouts and refreshes.
POOL_SIZE, MAX_OVERFLOW = 2, 3
_DATABASE_ERRORS = (SQLAlchemyError, OSError)


class RevocationList:
    """The revoked families this worker knows, and since when it knows them."""

    def __init__(self, max_staleness_seconds: float) -> None:
        self._families: dict[str, float] = {}  # family id -> when its tokens are all expired (epoch s)
        self._max_staleness = max_staleness_seconds
        self._fresh_at: float | None = None  # monotonic start of the last successful read
        self.read_at: datetime | None = None  # the database's time at that read
        self.reads = 0  # successful reads so far

    def is_revoked(self, family_id: str) -> bool:
        """Raises Unavailable (503) when the list is too old to vouch for a token."""
        age = self.age()
        if age is None or age > self._max_staleness:
            raise Unavailable(
                "token revocations cannot be checked now; try again shortly, or use an API key",
                headers={"Retry-After": DATABASE_RETRY_AFTER},
            )
        return family_id in self._families

    def age(self) -> float | None:
        return None if self._fresh_at is None else time.monotonic() - self._fresh_at

    def add(self, family_id: str, expires_at: datetime) -> None:
        self._families[family_id] = max(self._families.get(family_id, 0.0), expires_at.timestamp())

    def apply(self, started: float, read_at: datetime, families: list[RevokedFamily]) -> None:
        for family in families:
            self.add(family.family_id, family.expires_at)
        self._fresh_at = max(self._fresh_at or started, started)
        self.read_at = read_at
        self.reads += 1

    def drop_expired(self, now: float) -> None:
        self._families = {family: expiry for family, expiry in self._families.items() if expiry > now}

    def __len__(self) -> int:
        return len(self._families)


class Revocations:
    """One worker's revocation service: the list, its refresh task, and the writes."""

    def __init__(self, repository: RevocationRepository, auth: AuthSettings) -> None:
        self._repository = repository
        self._auth = auth
        self.list = RevocationList(auth.revocation_max_staleness_seconds)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def is_revoked(self, family_id: str) -> bool:
        return self.list.is_revoked(family_id)

    async def start(self) -> None:
        """The first read, before the worker serves; on failure access tokens wait for a later one."""
        await self.refresh()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> bool:
        """Read the rows revoked since the last read (all of them the first time); never raises."""
        started = time.monotonic()
        since = None if self.list.read_at is None else self.list.read_at - OVERLAP
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                read_at, families = await self._repository.revoked(since=since, now=datetime.now(UTC))
        except (*_DATABASE_ERRORS, TimeoutError) as exc:
            auth_revocation_refresh_failures_total.inc()
            if not self._failing:  # once per outage, not every second
                logger.warning("cannot read token revocations", exc_info=exc)
            self._failing = True
            return False
        if self._failing:
            logger.info("token revocations read again")
        self._failing = False
        self.list.apply(started, read_at, families)
        return True

    async def _run(self) -> None:
        next_prune = time.monotonic() + PRUNE_SECONDS
        while True:
            await asyncio.sleep(self._auth.revocation_refresh_seconds)
            try:
                await self.refresh()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_SECONDS
                    await self._prune()
            except Exception:
                # Never let the loop end: a list no longer read would refuse every JWT for good.
                logger.exception("token revocation refresh failed unexpectedly")

    async def _prune(self) -> None:
        self.list.drop_expired(time.time())
        try:
            removed = await self._repository.prune(now=datetime.now(UTC))
        except _DATABASE_ERRORS as exc:
            logger.warning("could not prune expired token revocations", extra={"error": exc.__class__.__name__})
            return
        if removed:
            logger.info("pruned expired token revocations", extra={"rows": removed})

    async def revoke(self, family_id: str, reason: RevocationReason) -> None:
        """Revoke every token of the family; Unavailable (503) when the database cannot be written."""
        expires_at = self._family_expiry()
        try:
            await self._repository.revoke_family(family_id=family_id, reason=reason, expires_at=expires_at)
        except _DATABASE_ERRORS as exc:
            raise _unwritable("logout", exc) from None
        self.list.add(family_id, expires_at)

    async def use_refresh_token(self, *, jti: str, family_id: str, exp: int) -> RefreshUse:
        """Claim the one use of a refresh token; a second use revokes its family."""
        leeway = timedelta(seconds=self._auth.leeway_seconds)
        family_expires_at = self._family_expiry()
        try:
            use = await self._repository.use_refresh_token(
                jti=jti,
                family_id=family_id,
                expires_at=datetime.fromtimestamp(exp, UTC) + leeway,
                family_expires_at=family_expires_at,
            )
        except _DATABASE_ERRORS as exc:
            raise _unwritable("token rotation", exc) from None
        if use != "first":
            self.list.add(family_id, family_expires_at)
        return use

    def _family_expiry(self) -> datetime:
        # Every token of the family, issued up to now, has expired by then (tokens.py refuses
        # longer lifetimes than these).
        auth = self._auth
        lifetime = max(auth.access_ttl_seconds, auth.refresh_ttl_seconds) + auth.leeway_seconds
        return datetime.now(UTC) + timedelta(seconds=lifetime)


def _unwritable(what: str, exc: BaseException) -> Unavailable:
    logger.warning("cannot write token revocations", exc_info=exc)
    return Unavailable(
        f"{what} is unavailable: the database cannot be written; try again shortly",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


@asynccontextmanager
async def revocation_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Its own small pool on `DATABASE_URL` (the role that may write), the first read, the refresh task."""
    settings: Settings = app.state.settings
    engine = create_engine(
        settings.database,
        database_url(settings.database),
        application_name="observatory-auth",
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        read_write=True,
    )
    revocations = Revocations(RevocationRepository(engine), settings.auth)
    app.state.revocations = revocations
    await revocations.start()
    try:
        yield
    finally:
        await revocations.stop()
        await engine.dispose()
