"""RevocationRepository on both backends: the database's clock orders the reads, the first use of
a refresh token is claimed once, and pruning removes only what no token can match any longer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db import tables
from observatory_api.security.revocation_repository import RevocationRepository

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=7)


async def test_reads_return_the_families_revoked_since_a_time_of_the_database_clock(
    migrated_engine: AsyncEngine,
) -> None:
    repository = RevocationRepository(migrated_engine)
    read_at, families = await repository.revoked(since=None, now=NOW)
    assert families == [] and abs(read_at - datetime.now(UTC)) < timedelta(minutes=5)
    await repository.revoke_family(family_id="f1", reason="logout", expires_at=LATER)
    second_read, families = await repository.revoked(since=read_at, now=NOW)
    assert [f.family_id for f in families] == ["f1"] and second_read >= read_at
    await repository.revoke_family(family_id="f2", reason="logout", expires_at=LATER)
    # Revoking again keeps the first row (and its time).
    await repository.revoke_family(family_id="f1", reason="reuse", expires_at=LATER)
    _, since_second = await repository.revoked(since=second_read, now=NOW)
    assert [f.family_id for f in since_second] == ["f2"]
    _, everything = await repository.revoked(since=None, now=NOW)
    assert sorted(f.family_id for f in everything) == ["f1", "f2"]
    assert all(f.expires_at == LATER for f in everything)


async def test_a_refresh_token_is_used_once_and_a_second_use_revokes_its_family(
    migrated_engine: AsyncEngine,
) -> None:
    repository = RevocationRepository(migrated_engine)
    use = {"family_id": "fam", "expires_at": LATER, "family_expires_at": LATER}
    assert await repository.use_refresh_token(jti="a", **use) == "first"
    assert await repository.use_refresh_token(jti="b", **use) == "first"
    assert await repository.use_refresh_token(jti="a", **use) == "reused"
    # The family is revoked now: its next token, even unused, is refused.
    assert await repository.use_refresh_token(jti="c", **use) == "revoked"
    assert await repository.use_refresh_token(jti="a", **use) == "revoked"
    _, families = await repository.revoked(since=None, now=NOW)
    assert [f.family_id for f in families] == ["fam"]


async def test_pruning_removes_only_rows_past_their_expiry(migrated_engine: AsyncEngine) -> None:
    repository = RevocationRepository(migrated_engine)
    past = NOW - timedelta(seconds=1)
    await repository.revoke_family(family_id="old", reason="logout", expires_at=past)
    await repository.revoke_family(family_id="live", reason="logout", expires_at=LATER)
    await repository.use_refresh_token(jti="old", family_id="x", expires_at=past, family_expires_at=LATER)
    await repository.use_refresh_token(jti="live", family_id="y", expires_at=LATER, family_expires_at=LATER)
    # An expired family no longer matters to a reader.
    _, families = await repository.revoked(since=None, now=NOW)
    assert [f.family_id for f in families] == ["live"]
    assert await repository.prune(now=NOW) == 2
    async with migrated_engine.connect() as conn:
        kept = (await conn.execute(select(tables.revoked_token_families.c.family_id))).scalars().all()
        uses = (await conn.execute(select(func.count()).select_from(tables.refresh_token_uses))).scalar_one()
    assert kept == ["live"] and uses == 1
