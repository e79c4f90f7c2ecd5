"""A real `observatory-api serve` with ingest enabled, per backend, on a fresh migrated database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from observatory_api.settings import load_settings
from tests.conftest import RUN_ID, TEST_AUTH, _pg_url, auth_headers
from tests.e2e.test_serve import free_port


class IngestServer(NamedTuple):
    base: str
    env: dict[str, str]
    ingest_key: str  # an API key with the ingest role, made by `observatory-api keys create`
    reader: dict[str, str]  # headers of a developer, for reading back over REST

    def otlp_headers(self) -> dict[str, str]:
        return {"x-api-key": self.ingest_key}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ingest_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_template: str,
    _sqlite_template_ready: Path,
) -> Iterator[IngestServer]:
    """A server that accepts OTLP on /v1/traces and /v1/logs, with an ingest key in its database."""
    workdir = tmp_path_factory.mktemp("ingest")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ENVIRONMENT")}
    env.update(
        {
            "INGEST_ENABLED": "true",
            "API_METRICS_PORT": str(free_port()),
            "JWT_SECRET": TEST_AUTH.jwt_secret or "",
            "SECRET_KEY": TEST_AUTH.secret_key or "",
        }
    )
    # Ingest needs a credential with the ingest permission: the tests sign theirs with these.
    env.update({"JWT_SECRET": TEST_AUTH.jwt_secret or "", "SECRET_KEY": TEST_AUTH.secret_key or ""})
    database = None
    if request.param == "postgresql":
        import asyncio

        from tests.conftest import _create_database, _drop_database

        database = f"observatory_test_{RUN_ID}_ingest_{uuid.uuid4().hex[:6]}"
        asyncio.run(_create_database(database, template=pg_template))
        env["DATABASE_URL"] = _pg_url(database)
    else:
        shutil.copyfile(_sqlite_template_ready, workdir / "observatory.db")
    created = subprocess.run(
        [sys.executable, "-m", "observatory_api", "keys", "create", "--name", "otel-collector", "--role", "ingest"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ingest_key = created.stdout.strip()
    reader = auth_headers(load_settings(environ=env), "developer")
    port = free_port()
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "observatory_api", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail((workdir / "server.log").read_text())
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the ingest server did not become ready")
        yield IngestServer(base, env, ingest_key, reader)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        log.close()
        if database is not None:
            asyncio.run(_drop_database(database))
