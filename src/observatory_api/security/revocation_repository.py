"""Revocation state in the database: revoked token families, and the one use of each refresh token.

Written with the engine of `DATABASE_URL` (the read path's read-only role cannot write); see
security/revocation.py for who calls what and when. Timestamps that readers compare across
workers and instances (`revoked_at`) come from the database's clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.db import tables
from observatory_api.db.write_sql import database_clock, dialect_insert

RefreshUse = Literal["first", "reused", "revoked"]
RevocationReason = Literal["logout", "reuse"]
_families = tables.revoked_token_families
_uses = tables.refresh_token_uses


class RevokedFamily(msgspec.Struct, frozen=True):
    family_id: str
    expires_at: datetime


class RevocationRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def revoked(self, *, since: datetime | None, now: datetime) -> tuple[datetime, list[RevokedFamily]]:
        """The database's time, then the families not yet expired at `now` and revoked at or
        after `since` (all of them when None). The time is read first: a row committed after this
        read carries a later `revoked_at`, unless its transaction began before (the caller's overlap)."""
        async with self._engine.connect() as conn:
            read_at = (await conn.execute(select(database_clock()))).scalar_one()
            query = select(_families.c.family_id, _families.c.expires_at).where(_families.c.expires_at > now)
            if since is not None:
                query = query.where(_families.c.revoked_at >= since)
            rows = (await conn.execute(query)).all()
        return read_at, [RevokedFamily(row.family_id, row.expires_at) for row in rows]

    async def revoke_family(self, *, family_id: str, reason: RevocationReason, expires_at: datetime) -> None:
        """Idempotent: a family revoked already keeps its first row."""
        async with self._engine.begin() as conn:
            await _revoke(conn, family_id=family_id, reason=reason, expires_at=expires_at)

    async def use_refresh_token(
        self, *, jti: str, family_id: str, expires_at: datetime, family_expires_at: datetime
    ) -> RefreshUse:
        """Claim the one use of refresh token `jti`, in one transaction: `first` for the one caller
        whose INSERT stored the row (the family not revoked); a second use revokes the family
        (`reused`), unless it was revoked already (`revoked`)."""
        async with self._engine.begin() as conn:
            # The INSERT comes first: SQLite then takes its write lock before reading anything.
            claim = dialect_insert(conn.dialect.name, _uses).values(
                jti=jti, family_id=family_id, used_at=database_clock(), expires_at=expires_at
            )
            first = (await conn.execute(claim.on_conflict_do_nothing())).rowcount == 1
            found = await conn.execute(select(_families.c.family_id).where(_families.c.family_id == family_id))
            if found.first() is not None:
                return "revoked"
            if first:
                return "first"
            await _revoke(conn, family_id=family_id, reason="reuse", expires_at=family_expires_at)
            return "reused"

    async def prune(self, *, now: datetime) -> int:
        """Delete the rows no token can match any longer; returns how many."""
        async with self._engine.begin() as conn:
            families = await conn.execute(delete(_families).where(_families.c.expires_at < now))
            uses = await conn.execute(delete(_uses).where(_uses.c.expires_at < now))
        return families.rowcount + uses.rowcount


async def _revoke(conn: AsyncConnection, *, family_id: str, reason: RevocationReason, expires_at: datetime) -> None:
    statement = dialect_insert(conn.dialect.name, _families).values(
        family_id=family_id, reason=reason, revoked_at=database_clock(), expires_at=expires_at
    )
    await conn.execute(statement.on_conflict_do_nothing())
