"""API keys: `obs_<12 hex lookup prefix>_<43 url-safe random characters>`.

Only HMAC-SHA256(SECRET_KEY, key) and the prefix are stored; a presented key is looked up by its
prefix and compared in constant time. The API reads `api_keys`; only the CLI (on the owner
database URL) creates and revokes keys. The API's one write is `last_used_at`, through the owner
engine when the app has one (see key_usage.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.structs import copy_fields
from observatory_api.db import tables
from observatory_api.settings import Settings
from observatory_api.settings.errors import ConfigError
from observatory_api.settings.secret_rules import DEVELOPMENT_SECRET_KEY

KEY_PREFIX = "obs_"
_KEY_RE = re.compile(r"^obs_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
_k = tables.api_keys


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    prefix: str
    key_hash: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why this key cannot be used now (a bounded reason), or None."""
        if self.revoked_at is not None:
            return "key_revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "key_expired"
        return None


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as admins see it: never its secret or its hash."""

    id: str
    name: str
    prefix: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    # Updated at most once per `auth.key_usage_interval_seconds`, and only by an app with a write engine.
    last_used_at: datetime | None
    active: bool


def generate_api_key() -> tuple[str, str]:
    """A new key and its lookup prefix (48 bits of prefix, 256 bits of secret)."""
    prefix = secrets.token_hex(6)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix_of(raw: str) -> str | None:
    match = _KEY_RE.match(raw)
    return match.group("prefix") if match else None


def hash_api_key(secret_key: str, raw: str) -> str:
    return hmac.new(secret_key.encode(), raw.encode(), hashlib.sha256).hexdigest()


def key_matches(secret_key: str, raw: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(secret_key, raw), stored_hash)


def secret_key_of(settings: Settings) -> str:
    if settings.auth.secret_key:
        return settings.auth.secret_key
    if settings.environment not in ("development", "test"):
        raise ConfigError("auth.secret_key (SECRET_KEY)", f"is required when ENVIRONMENT={settings.environment}")
    return DEVELOPMENT_SECRET_KEY


def _record(row: Row[Any]) -> ApiKeyRecord:
    mapping = row._mapping
    return ApiKeyRecord(**{name: mapping[name] for name in ApiKeyRecord.__struct_fields__})


def _info_of_row(row: Row[Any], now: datetime) -> ApiKeyInfo:
    return _info(_record(row), now, last_used_at=row._mapping["last_used_at"])


class ApiKeyRepository:
    """Reads, for the API (read-only role)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(_k).where(_k.c.prefix == prefix))).first()
        return None if row is None else _record(row)

    async def list_keys(self) -> list[ApiKeyInfo]:
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(_k).order_by(_k.c.created_at, _k.c.id))).all()
        return [_info_of_row(row, now) for row in rows]


class ApiKeyUsageRepository:
    """The API's one write to `api_keys`, on a write-capable (owner) engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def mark_used(self, *, key_id: str, at: datetime) -> int:
        """Set `last_used_at`, never moving it backwards; returns the rows changed."""
        stale = or_(_k.c.last_used_at.is_(None), _k.c.last_used_at < at)
        async with self._engine.begin() as conn:
            result = await conn.execute(update(_k).where(_k.c.id == key_id, stale).values(last_used_at=at))
        return result.rowcount


class ApiKeyAdmin(ApiKeyRepository):
    """Writes, for the CLI on the owner database URL."""

    async def create(
        self, *, name: str, role: str, secret_key: str, expires_at: datetime | None = None
    ) -> tuple[str, ApiKeyInfo]:
        raw, prefix = generate_api_key()
        record = ApiKeyRecord(
            id=uuid.uuid4().hex,
            name=name,
            prefix=prefix,
            key_hash=hash_api_key(secret_key, raw),
            role=role,
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            revoked_at=None,
        )
        async with self._engine.begin() as conn:
            await conn.execute(insert(_k).values(**msgspec.structs.asdict(record)))
        return raw, _info(record, record.created_at)

    async def revoke(self, id_or_prefix: str) -> ApiKeyInfo | None:
        """Revoke by id or prefix; returns the key (None when no key matches)."""
        now = datetime.now(UTC)
        match = or_(_k.c.id == id_or_prefix, _k.c.prefix == id_or_prefix)
        async with self._engine.begin() as conn:
            await conn.execute(update(_k).where(match, _k.c.revoked_at.is_(None)).values(revoked_at=now))
            row = (await conn.execute(select(_k).where(match))).first()
        return None if row is None else _info_of_row(row, now)

    async def revoke_named(self, name: str) -> list[str]:
        """Revoke every active key called `name`; returns their prefixes."""
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            found = (await conn.execute(select(_k.c.prefix).where(_k.c.name == name, _k.c.revoked_at.is_(None)))).all()
            await conn.execute(update(_k).where(_k.c.name == name, _k.c.revoked_at.is_(None)).values(revoked_at=now))
        return [row.prefix for row in found]


def _info(record: ApiKeyRecord, now: datetime, *, last_used_at: datetime | None = None) -> ApiKeyInfo:
    active = record.refusal(now) is None
    return copy_fields(ApiKeyInfo, record, last_used_at=last_used_at, active=active)
