"""`observatory-api export --direct`: the service's export run in the CLI's own process against
the configured database (no server, no key), equal to the HTTP export."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from litestar.testing import TestClient

from observatory_api.settings import DatabaseSettings
from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY
from tests.integration.test_cli import run_cli


def cli_env(database: DatabaseSettings, cwd: Path) -> dict[str, str]:
    env = {"ENVIRONMENT": "test", "JWT_SECRET": STRONG_JWT_SECRET, "SECRET_KEY": STRONG_SECRET_KEY}
    if database.url:
        env["DATABASE_URL"] = database.url
        if database.readonly_user:
            env["DB_READONLY_USER"] = database.readonly_user
            env["DB_READONLY_PASSWORD"] = database.readonly_password or ""
    else:
        # The default SQLite path, in the working folder: a copy of the shared dataset.
        shutil.copyfile(database.sqlite_path, cwd / "observatory.db")
    return env


@pytest.mark.parametrize(("resource", "fmt"), [("spans", "ndjson"), ("logs", "otlp-json"), ("traces", "parquet")])
def test_a_direct_export_equals_the_http_export(
    client: TestClient[Any],
    backend: str,
    seeded_databases: dict[str, DatabaseSettings],
    full_range: dict[str, str],
    tmp_path: Path,
    resource: str,
    fmt: str,
) -> None:
    env = cli_env(seeded_databases[backend], tmp_path)
    out = tmp_path / f"export.{fmt}"
    window = ["--from", full_range["from"], "--to", full_range["to"]]
    done = run_cli(
        "export", resource, "--direct", "--format", fmt, *window, "--output", str(out), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stderr and "Traceback" not in done.stderr

    http = client.get(f"/api/v1/{resource}/export", params={**full_range, "format": fmt})
    assert http.status_code == 200
    assert len(http.content) > 10_000
    if fmt == "parquet":
        direct_table = pq.read_table(out)
        assert direct_table.num_rows > 100
        assert direct_table.equals(pq.read_table(io.BytesIO(http.content)))
    else:
        assert out.read_bytes() == http.content


def test_a_direct_export_with_a_bad_filter_fails_with_the_problem(
    backend: str, seeded_databases: dict[str, DatabaseSettings], tmp_path: Path
) -> None:
    env = cli_env(seeded_databases[backend], tmp_path)
    done = run_cli("export", "spans", "--direct", "--filter", "kind=robot", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "400" in done.stderr and "kind" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
