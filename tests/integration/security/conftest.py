"""Fixtures for the security tests: a private Redis key prefix on db 15, apps per role, keys."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.security.api_keys import ApiKeyAdmin, secret_key_of
from observatory_api.settings import DatabaseSettings, RedisSettings, Settings
from tests.conftest import RUN_ID

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A `redis-server` of one test on a free port, as compose runs it (no persistence), that the
    test may stop, restart, flush or reconfigure: the shared Redis on 6379 is never touched."""

    def __init__(self, workdir: Path, *options: str) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for this test"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self._command += ["--dir", str(workdir), *options]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.02)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Killed and started again on the same port: every key is gone, every connection closed."""
        self.kill()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()
