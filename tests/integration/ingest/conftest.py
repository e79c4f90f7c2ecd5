"""A real `observatory-api serve` with ingest enabled, per backend, on a fresh migrated database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from observatory_api.settings import load_settings
from tests.conftest import RUN_ID, TEST_AUTH, _create_database, _drop_database, _pg_url, auth_headers
from tests.e2e.server import UNSET, start_server


class IngestServer(NamedTuple):
    base: str
    ingest_key: str  # an API key with the ingest role, made by `observatory-api keys create`
    reader: dict[str, str]  # headers of a developer, for reading back over REST
    grpc_target: str  # host:port of its OTLP/gRPC server

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
    # The server signs and checks tokens with the tests' secrets (start_server sets them).
    env = {
        **{k: v for k, v in os.environ.items() if k not in UNSET},
        "INGEST_ENABLED": "true",
        "JWT_SECRET": TEST_AUTH.jwt_secret or "",
        "SECRET_KEY": TEST_AUTH.secret_key or "",
    }
    with contextlib.ExitStack() as cleanup:
        if request.param == "postgresql":
            database = f"observatory_test_{RUN_ID}_ingest_{uuid.uuid4().hex[:6]}"
            asyncio.run(_create_database(database, template=pg_template))
            cleanup.callback(lambda: asyncio.run(_drop_database(database)))
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
        reader = auth_headers(load_settings(environ=env), "developer")
        server = cleanup.enter_context(start_server(workdir, workers=1, env=env))
        yield IngestServer(server.base, created.stdout.strip(), reader, f"127.0.0.1:{server.grpc_port}")
