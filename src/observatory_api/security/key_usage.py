"""Maintains `api_keys.last_used_at` without costing the hot path a database round trip.

An accepted key is written at most once per `auth.key_usage_interval_seconds`: each worker first
checks its own clock (no I/O), then claims `<prefix>:auth:key-used:<key id>` in the security
store (SET NX with that TTL), so workers and instances sharing Redis write once between them. The
write runs in a background task on the owner engine (`Resources.write_engine`, present when
ingest is enabled); the read-only role of the read path cannot write. Without a write engine nothing is
recorded. A failed write is logged and never reaches the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.security.api_keys import ApiKeyUsageRepository
from observatory_api.security.store import SecurityStore, StoreUnavailable

logger = logging.getLogger("observatory_api.security.key_usage")
DRAIN_SECONDS = 5.0


def key_used_key(store: SecurityStore, key_id: str) -> str:
    return store.key("auth", "key-used", key_id)


class KeyUsageRecorder:
    """`record(key_id)` after a key (or a token exchanged from it) is accepted; it never raises."""

    def __init__(self, *, engine: AsyncEngine | None, store: SecurityStore, interval_seconds: int) -> None:
        self._repository = ApiKeyUsageRepository(engine) if engine is not None else None
        self._store = store
        self._interval = interval_seconds
        # key id -> monotonic time before which this worker does not try again. Only ids of keys
        # that authenticated get here, so the map is bounded by the number of keys.
        self._quiet_until: dict[str, float] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._repository is not None

    def record(self, key_id: str) -> None:
        if self._repository is None:
            return
        now = time.monotonic()
        if self._quiet_until.get(key_id, 0.0) > now:
            return
        self._quiet_until[key_id] = now + self._interval
        task = asyncio.create_task(self._write(self._repository, key_id, datetime.now(UTC)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, repository: ApiKeyUsageRepository, key_id: str, at: datetime) -> None:
        claim = key_used_key(self._store, key_id)
        try:
            try:
                if not await self._store.claim(claim, self._interval):
                    return  # another worker or instance wrote it within the interval
            except StoreUnavailable:
                pass  # without the store, each worker's own clock still bounds the writes
            await repository.mark_used(key_id=key_id, at=at)
        except Exception as exc:
            logger.warning("could not record API key use", extra={"key_id": key_id, "error": exc.__class__.__name__})
            # Let another worker try within the interval.
            with contextlib.suppress(StoreUnavailable):
                await self._store.delete(claim)

    async def drain(self) -> None:
        """Wait for the writes in flight (at shutdown, and in tests), at most DRAIN_SECONDS."""
        if not self._pending:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await asyncio.gather(*self._pending, return_exceptions=True)
