"""On SQLite an export reads on connections with a small page cache (`db.engine.EXPORT_CACHE_KIB`):
it reads every page once, and a 64 MiB cache filled by the first export was most of the server's
growth (bench/RESULTS.md). Every other read keeps the large cache, on the same pooled connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from observatory_api.app import create_app
from observatory_api.db.engine import CACHE_KIB, EXPORT_CACHE_KIB
from observatory_api.settings import CacheSettings, DatabaseSettings
from tests.conftest import auth_headers, make_settings


@pytest.fixture
def sqlite_client(seeded_databases: dict[str, DatabaseSettings]) -> Iterator[TestClient[Any]]:
    # No response cache: every list request reads.
    settings = make_settings(seeded_databases["sqlite"], cache=CacheSettings(enabled=False))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(settings, "developer"))
        yield client


def cache_sizes_while(client: TestClient[Any], path: str, params: dict[str, str]) -> set[int]:
    """The page cache (KiB) of every connection the request checked out, as it got it."""
    pool = client.app.state.resources.read_engine.sync_engine.pool
    seen: set[int] = set()

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA cache_size")
        seen.add(-cursor.fetchone()[0])
        cursor.close()

    event.listen(pool, "checkout", checkout)  # after the engine's own listener: sees what it set
    try:
        response = client.get(path, params=params)
    finally:
        event.remove(pool, "checkout", checkout)
    assert response.status_code == 200, response.text
    return seen


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_an_export_reads_with_a_small_cache_and_other_reads_keep_theirs(
    sqlite_client: TestClient[Any], full_range: dict[str, str], fmt: str
) -> None:
    listing = {**full_range, "limit": "1000"}
    assert cache_sizes_while(sqlite_client, "/api/v1/spans", listing) == {CACHE_KIB}
    exported = cache_sizes_while(sqlite_client, "/api/v1/spans/export", {**full_range, "format": fmt})
    assert exported == {EXPORT_CACHE_KIB}
    # The same pooled connection, given back its large cache for the next ordinary read.
    assert cache_sizes_while(sqlite_client, "/api/v1/spans", listing) == {CACHE_KIB}
    assert cache_sizes_while(sqlite_client, "/api/v1/logs/export", full_range) == {EXPORT_CACHE_KIB}
