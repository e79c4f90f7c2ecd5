"""Component probes with short timeouts: a stuck dependency makes a probe fail, never hang."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.revisions import current_revision

PROBE_TIMEOUT_SECONDS = 2.0


class ComponentState(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "down"]
    latency_ms: float
    detail: str | None = None


async def check_database(engine: AsyncEngine, schema_head: str | None) -> ComponentState:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            revision = await current_revision(connection)
    except Exception as exc:
        return ComponentState(status="down", latency_ms=_since(started), detail=f"unreachable ({type(exc).__name__})")
    if revision != schema_head:
        detail = f"schema at {revision or 'nothing'}, expected {schema_head}; run `observatory-api migrate`"
        return ComponentState(status="down", latency_ms=_since(started), detail=detail)
    return ComponentState(status="ok", latency_ms=_since(started))


async def check_redis(client: Any) -> ComponentState:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await client.ping()
    except Exception as exc:
        return ComponentState(status="down", latency_ms=_since(started), detail=f"unreachable ({type(exc).__name__})")
    return ComponentState(status="ok", latency_ms=_since(started))


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
