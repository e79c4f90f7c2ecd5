"""Fixtures for the security tests: a private Redis key prefix on db 15, apps per role, keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
import redis
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.security.api_keys import ApiKeyAdmin, secret_key_of
from observatory_api.settings import DatabaseSettings, RedisSettings, Settings
from tests.conftest import RUN_ID
from tests.private_redis import PrivateRedis as PrivateRedis  # re-exported: the security tests import it from here

TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def flush_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_settings() -> Iterator[RedisSettings]:
    """Redis db 15 under a key prefix of this test alone, deleted afterwards (nothing else is touched)."""
    prefix = f"obstest_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    yield RedisSettings(url=TEST_REDIS_URL, key_prefix=prefix)
    flush_prefix(prefix)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def create_key(settings: Settings, *, role: str, name: str = "test", expires_at: datetime | None = None) -> str:
    """Insert a key with the owner URL, as `observatory-api keys create` does."""

    async def run() -> str:
        db: DatabaseSettings = settings.database
        engine = create_engine(db, database_url(db))
        try:
            raw, _ = await ApiKeyAdmin(engine).create(
                name=name, role=role, secret_key=secret_key_of(settings), expires_at=expires_at
            )
            return raw
        finally:
            await engine.dispose()

    return asyncio.run(run())


def revoke_key(settings: Settings, raw: str) -> None:
    async def run() -> None:
        db = settings.database
        engine = create_engine(db, database_url(db))
        try:
            await ApiKeyAdmin(engine).revoke(raw.split("_")[1])
        finally:
            await engine.dispose()

    asyncio.run(run())


def open_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)
