"""Health routes, request ids, the OpenAPI document and its committed copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, RedisSettings
from tests.conftest import auth_headers, make_settings

OPENAPI_FILE = Path(__file__).resolve().parents[3] / "schemas" / "openapi.json"


def test_alive_ready_health(client: TestClient) -> None:
    assert client.get("/alive").json() == {"status": "alive"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["components"]["database"]["status"] == "ok"
    assert health["uptime_seconds"] >= 0


def test_request_id_is_returned_and_echoed_when_well_formed(client: TestClient) -> None:
    generated = client.get("/alive").headers["x-request-id"]
    assert len(generated) == 32
    assert client.get("/alive", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    forged = client.get("/alive", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert forged != "bad id\twith spaces"
    missing = client.get("/no/such/route", headers={"X-Request-ID": "req-404"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "req-404"
    assert missing.json()["request_id"] == "req-404"


def test_ready_is_503_when_the_schema_is_behind(tmp_path: Path) -> None:
    # A PostgreSQL database that was never migrated: not ready, and /health says down.
    import asyncio

    import asyncpg

    from tests.conftest import ADMIN_URL, _pg_url

    name = f"observatory_test_unmigrated_{tmp_path.name[-8:]}".lower().replace("-", "_")

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        app = create_app(make_settings(DatabaseSettings(url=_pg_url(name))))
        with TestClient(app) as client:
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert "migrate" in ready.json()["components"]["database"]["detail"]
            assert client.get("/health").json()["status"] == "down"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_docs_are_served(client: TestClient) -> None:
    for page in ("/schema/swagger", "/schema/redoc"):
        answer = client.get(page)
        assert answer.status_code == 200
        # Every asset the page names is served by the service itself (no CDN: works offline).
        assets = re.findall(r'(?:src|href|spec-url)="([^"]+)"', answer.text)
        assert assets and all(asset.startswith("/schema/") for asset in assets), assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    spec = client.get("/schema/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/traces/search" in spec["paths"]


def test_every_operation_declares_the_credentials_it_takes(client: TestClient) -> None:
    spec = client.get("/schema/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    both = [{"apiKey": []}, {"bearerAuth": []}]
    credential = dict(client.headers)
    client.headers.clear()  # as an anonymous caller
    try:
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                answer = client.request(method.upper(), path.replace("{", "x").replace("}", ""))
                if operation["security"][0] == {}:  # marked open: answered without a credential
                    assert answer.status_code != 401, (method, path)
                else:
                    assert operation["security"] in (both, [{"apiKey": []}]), (method, path)
                    assert answer.status_code == 401, (method, path)
    finally:
        client.headers.update(credential)


def test_committed_openapi_matches_the_code(client: TestClient) -> None:
    live = client.get("/schema/openapi.json").json()
    committed = json.loads(OPENAPI_FILE.read_text())
    assert committed == live, "schemas/openapi.json is stale: run `python -m observatory_api.export_schemas`"


def test_health_reports_redis_and_degrades_without_it(seeded_databases: dict) -> None:
    database = seeded_databases["sqlite"]
    up = make_settings(database, redis=RedisSettings(url="redis://127.0.0.1:6379/15"))
    with TestClient(create_app(up)) as client:
        client.headers.update(auth_headers(up))
        health = client.get("/health").json()
        assert health["components"]["redis"]["status"] == "ok"
        assert client.get("/ready").status_code == 200
    # Nothing listens on port 1: Redis is down, the service keeps answering, quickly.
    down = make_settings(database, redis=RedisSettings(url="redis://127.0.0.1:1/0"))
    with TestClient(create_app(down)) as client:
        client.headers.update(auth_headers(down))
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["components"]["redis"]["status"] == "down"
        assert client.get("/ready").status_code == 503
        assert client.get("/api/v1/models").status_code == 200
