"""The Redis Sentinel settings: environment variables, validation (every problem at once, each
naming its key), masking, and the client the factory builds from them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from observatory_api.redis_client import (
    BlockingSentinelConnectionPool,
    FollowingConnection,
    FollowingSentinelConnectionPool,
    PoolLimits,
    open_redis,
)
from observatory_api.settings import RedisSettings, load_settings, masked
from observatory_api.settings.errors import ConfigError, ConfigErrors
from observatory_api.settings.redis_checks import sentinel_address
from tests.unit.test_settings import REPO_CONFIG, production

SENTINELS = {
    "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26380,[::1]:26381",
    "REDIS_SENTINEL_MASTER": "observatory",
    "REDIS_SENTINEL_PASSWORD": "sentinel-secret-value",
}


def test_the_environment_sets_the_sentinels_master_and_password() -> None:
    redis = load_settings(REPO_CONFIG, environ=SENTINELS).redis
    assert redis.sentinel.hosts == ("10.0.0.1:26379", "10.0.0.2:26380", "[::1]:26381")
    assert redis.sentinel.master_name == "observatory"
    assert redis.sentinel.password == "sentinel-secret-value"
    assert redis.configured and redis.url is None
    assert [sentinel_address(h) for h in redis.sentinel.hosts] == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("::1", 26381),
    ]


def test_the_committed_config_file_has_no_sentinel_and_redis_is_off() -> None:
    redis = load_settings(REPO_CONFIG, environ={}).redis
    assert redis.sentinel.hosts == () and redis.sentinel.master_name is None
    assert not redis.configured


def test_the_sentinel_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel"
    secret.write_text("from-a-file-secret\n")
    environ = {**SENTINELS, "REDIS_SENTINEL_PASSWORD": "", "REDIS_SENTINEL_PASSWORD_FILE": str(secret)}
    assert load_settings(REPO_CONFIG, environ=environ).redis.sentinel.password == "from-a-file-secret"


def test_every_sentinel_problem_is_reported_at_once_naming_its_key() -> None:
    environ = {"REDIS_SENTINELS": "10.0.0.1:26379,nohost,10.0.0.3:99999", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    with pytest.raises(ConfigErrors) as caught:
        load_settings(REPO_CONFIG, environ=environ)
    found = [(p.key, p.reason) for p in caught.value.problems]
    assert ("redis.sentinel.hosts (REDIS_SENTINELS)", "`nohost` is not host:port (e.g. 10.0.0.5:26379)") in found
    assert any(key == "redis.sentinel.hosts (REDIS_SENTINELS)" and "10.0.0.3:99999" in r for key, r in found)
    assert any(key == "redis.sentinel.master_name (REDIS_SENTINEL_MASTER)" for key, _ in found)
    assert any(key == "redis.url (REDIS_URL)" and "not both" in r for key, r in found)
    assert len(found) == 4


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"REDIS_SENTINEL_MASTER": "observatory"}, "redis.sentinel.hosts (REDIS_SENTINELS)"),
        ({"REDIS_SENTINEL_PASSWORD": "x" * 20}, "redis.sentinel.password (REDIS_SENTINEL_PASSWORD)"),
        ({"REDIS_SENTINELS": "10.0.0.1:", "REDIS_SENTINEL_MASTER": "m"}, "redis.sentinel.hosts (REDIS_SENTINELS)"),
    ],
)
def test_a_half_configured_sentinel_names_the_missing_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(REPO_CONFIG, environ=environ)
    assert caught.value.key == key


def test_a_wrong_type_in_the_file_names_the_nested_key(tmp_path: Path) -> None:
    config = tmp_path / "api-config.yml"
    config.write_text("redis:\n  sentinel:\n    hosts: 5\n    master_name: [1]\n")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(config, environ={})
    assert {p.key for p in caught.value.problems} == {"redis.sentinel.hosts", "redis.sentinel.master_name"}


def test_production_refuses_a_sample_sentinel_password_and_accepts_sentinel_for_workers() -> None:
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_PASSWORD"):
        load_settings(REPO_CONFIG, environ=production(**{**SENTINELS, "REDIS_SENTINEL_PASSWORD": "changeme"}))
    # Several workers need shared state: Sentinel provides it as REDIS_URL does.
    settings = load_settings(REPO_CONFIG, environ=production(**SENTINELS, API_WORKERS="4"))
    assert settings.server.workers == 4


def test_masking_hides_the_sentinel_password() -> None:
    settings = load_settings(REPO_CONFIG, environ=SENTINELS)
    shown = masked(settings)
    assert shown["redis"]["sentinel"]["password"] == "***"
    assert "sentinel-secret-value" not in repr(shown)


def test_the_factory_builds_a_sentinel_client_with_the_pool_asked_for() -> None:
    settings = load_settings(REPO_CONFIG, environ=SENTINELS).redis

    async def build() -> None:
        plain = open_redis(settings, timeout=0.5)
        pooled = open_redis(settings, timeout=1.5, pool=PoolLimits(max_connections=7, health_check_seconds=10))
        assert plain is not None and pooled is not None
        assert plain.via_sentinel and pooled.via_sentinel
        plain_pool = plain.client.connection_pool
        # Sentinel's pool whose connections reconnect through the Sentinels (redis_client.py).
        assert type(plain_pool) is FollowingSentinelConnectionPool
        assert isinstance(plain_pool, SentinelConnectionPool)
        assert plain_pool.connection_class is FollowingConnection
        assert plain_pool.service_name == "observatory"
        assert plain_pool.connection_kwargs["socket_timeout"] == 0.5
        bounded = pooled.client.connection_pool
        assert isinstance(bounded, BlockingSentinelConnectionPool)
        assert bounded.connection_class is FollowingConnection
        assert bounded.max_connections == 7 and bounded.timeout == 1.5
        assert bounded.connection_kwargs["retry"].get_retries() == 1
        assert bounded.connection_kwargs["health_check_interval"] == 10
        await plain.aclose()
        await pooled.aclose()

    asyncio.run(build())


def test_the_factory_returns_nothing_without_redis_and_a_url_client_with_a_url() -> None:
    assert open_redis(RedisSettings(), timeout=1) is None
    connection = open_redis(RedisSettings(url="redis://127.0.0.1:1/0", password="pw"), timeout=1)
    assert connection is not None and not connection.via_sentinel
    assert connection.client.connection_pool.connection_kwargs["password"] == "pw"
    asyncio.run(connection.aclose())
