"""The response cache on Redis: keyed by role and encoding, ETag and 304, client no-cache, purge."""

from __future__ import annotations

import redis

from observatory_api.settings import CacheSettings, DatabaseSettings, RedisSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.security.conftest import TEST_REDIS_URL, counter, create_key, open_client


def cached_keys(prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        return list(client.scan_iter(match=f"{prefix}:cache*"))
    finally:
        client.close()


def test_cache_hits_are_served_from_redis_keyed_by_role_and_encoding(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database, redis=redis_settings, cache=CacheSettings(endpoints={"/api/v1/models": 120})
    )
    developer, viewer = auth_headers(settings, "developer"), auth_headers(settings, "viewer")
    plain = {"Accept-Encoding": "identity"}
    with open_client(settings) as client:
        misses = counter("cache_misses_total", route="/api/v1/models")
        hits = counter("cache_hits_total", route="/api/v1/models")
        first = client.get("/api/v1/models", headers={**developer, **plain})
        assert first.status_code == 200 and first.headers["x-cache"] == "miss"
        assert first.headers["cache-control"] == "private, max-age=120"
        assert "Authorization" in first.headers["vary"] and "Accept-Encoding" in first.headers["vary"]
        assert len(cached_keys(redis_settings.key_prefix)) == 1
        again = client.get("/api/v1/models", headers={**developer, **plain})
        assert again.headers["x-cache"] == "hit" and again.content == first.content
        # Another role, another encoding, another query: each its own entry.
        assert client.get("/api/v1/models", headers={**viewer, **plain}).headers["x-cache"] == "miss"
        gzipped = client.get("/api/v1/models", headers={**developer, "Accept-Encoding": "gzip"})
        assert gzipped.headers["x-cache"] == "miss" and gzipped.headers["content-encoding"] == "gzip"
        assert gzipped.json() == first.json()
        assert (
            client.get("/api/v1/models", headers={**developer, "Accept-Encoding": "gzip"}).headers["x-cache"] == "hit"
        )
        assert (
            client.get("/api/v1/models", params={"provider": "openai"}, headers={**developer, **plain}).headers[
                "x-cache"
            ]
            == "miss"
        )
        assert counter("cache_hits_total", route="/api/v1/models") == hits + 2
        assert counter("cache_misses_total", route="/api/v1/models") == misses + 4
        assert len(cached_keys(redis_settings.key_prefix)) == 4


def test_etag_304_and_client_no_cache(migrated_database: DatabaseSettings, redis_settings: RedisSettings) -> None:
    settings = make_settings(migrated_database, redis=redis_settings)
    headers = {**auth_headers(settings, "developer"), "Accept-Encoding": "identity"}
    with open_client(settings) as client:
        first = client.get("/api/v1/models", headers=headers)
        etag = first.headers["etag"]
        assert etag.startswith('W/"')
        not_modified = client.get("/api/v1/models", headers={**headers, "If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        # The same representation gzipped has the same (weak) validator.
        gz = client.get("/api/v1/models", headers={**headers, "Accept-Encoding": "gzip", "If-None-Match": etag})
        assert gz.status_code == 304
        changed = client.get("/api/v1/models", headers={**headers, "If-None-Match": 'W/"something-else"'})
        assert changed.status_code == 200 and changed.json() == first.json()
        # no-cache skips the lookup (a miss, computed afresh) and refreshes the entry.
        bypass = client.get("/api/v1/models", headers={**headers, "Cache-Control": "no-cache"})
        assert bypass.headers["x-cache"] == "miss"
        assert client.get("/api/v1/models", headers=headers).headers["x-cache"] == "hit"


def test_admin_lists_keys_without_secrets_and_purges_the_cache(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(migrated_database, redis=redis_settings)
    key = create_key(settings, role="viewer", name="grafana")
    admin = auth_headers(settings, "admin")
    with open_client(settings) as client:
        listed = client.get("/api/v1/admin/api-keys", headers=admin)
        assert listed.status_code == 200
        entry = next(k for k in listed.json()["data"] if k["name"] == "grafana")
        assert entry["prefix"] == key.split("_")[1] and entry["role"] == "viewer" and entry["active"] is True
        assert "key_hash" not in entry and key not in listed.text and key.split("_", 2)[2] not in listed.text
        client.get("/api/v1/models", headers=admin)
        assert client.get("/api/v1/models", headers=admin).headers["x-cache"] == "hit"
        assert cached_keys(redis_settings.key_prefix)
        assert client.post("/api/v1/admin/cache/purge", headers=admin).json() == {"purged": True}
        assert not cached_keys(redis_settings.key_prefix)
        assert client.get("/api/v1/models", headers=admin).headers["x-cache"] == "miss"


def test_the_cache_can_be_switched_off_and_survives_redis_down(migrated_database: DatabaseSettings) -> None:
    off = make_settings(migrated_database, cache=CacheSettings(enabled=False))
    with open_client(off) as client:
        for _ in range(2):
            response = client.get("/api/v1/models", headers=auth_headers(off))
            assert response.status_code == 200 and "x-cache" not in response.headers
    down = make_settings(migrated_database, redis=RedisSettings(url="redis://127.0.0.1:1/0"))
    with open_client(down) as client:
        for _ in range(2):
            response = client.get("/api/v1/models", headers=auth_headers(down))
            assert response.status_code == 200 and response.headers["x-cache"] == "miss"
