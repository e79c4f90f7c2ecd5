"""The CLI, run as a user runs it: a subprocess of `python -m observatory_api`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.revisions import current_revision, head_revision
from observatory_api.settings import DatabaseSettings
from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY

STRONG, STRONG_KEY = STRONG_JWT_SECRET, STRONG_SECRET_KEY


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ENVIRONMENT")}
    return subprocess.run(
        [sys.executable, "-m", "observatory_api", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_config_check_prints_the_configuration_with_secrets_masked(tmp_path: Path) -> None:
    result = run_cli("config", "check", cwd=tmp_path, env={"JWT_SECRET": STRONG, "DB_READONLY_PASSWORD": "hush"})
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["auth"]["jwt_secret"] == "***"
    assert printed["database"]["readonly_password"] == "***"
    assert STRONG not in result.stdout and "hush" not in result.stdout


def test_config_check_production_refuses_with_one_line_naming_the_key(tmp_path: Path) -> None:
    env = {
        "JWT_SECRET": "short",
        "SECRET_KEY": STRONG_KEY,
        "CORS_ORIGINS": "https://a.example",
        "DATABASE_URL": "postgresql://u:p@h/d",
    }
    result = run_cli("config", "check", "--production", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "JWT_SECRET" in result.stderr
    assert "short" not in result.stderr


def test_config_check_production_reports_every_failure_in_one_run(tmp_path: Path) -> None:
    env = {
        "JWT_SECRET": "changeme-changeme-changeme-changeme",
        "SECRET_KEY": "changeme-changeme-changeme-changeme",
        "CORS_ORIGINS": "null",
        "API_WORKERS": "3",
        "GRAPHQL_PLAYGROUND": "true",
    }
    result = run_cli("config", "check", "--production", cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "observatory-api: invalid configuration, 7 problems:"
    for key in (
        "auth.jwt_secret (JWT_SECRET): is a public sample",
        "auth.secret_key (SECRET_KEY): is a public sample",
        "auth.jwt_secret (JWT_SECRET): must differ from SECRET_KEY",
        "cors.origins (CORS_ORIGINS): `null` is refused",
        "server.workers (API_WORKERS, serve --workers): 3 workers need REDIS_URL",
        "graphql.playground (GRAPHQL_PLAYGROUND): must be false",
        "database.url (DATABASE_URL): production needs PostgreSQL",
    ):
        assert sum(line.strip().startswith(key) for line in lines[1:]) == 1, (key, lines)
    assert "changeme-changeme" not in result.stderr and result.stdout == ""


def test_serve_refuses_a_reachable_address_without_secrets_and_workers_without_redis(tmp_path: Path) -> None:
    # The port is also the metrics port, a problem of its own: should the checks under test ever
    # pass, `serve` still stops before it binds anything.
    never_binds = {"API_METRICS_PORT": "9", "JWT_SECRET": "", "SECRET_KEY": ""}
    exposed = run_cli("serve", "--host", "0.0.0.0", "--port", "9", cwd=tmp_path, env=never_binds)
    assert exposed.returncode == 2
    assert "serving on" not in exposed.stdout
    assert "auth.jwt_secret (JWT_SECRET): is required when the server listens on 0.0.0.0" in exposed.stderr
    assert "auth.secret_key (SECRET_KEY): is required when the server listens on 0.0.0.0" in exposed.stderr
    production = {
        **never_binds,
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql://u:p@h/d",
        "JWT_SECRET": STRONG,
        "SECRET_KEY": STRONG_KEY,
        "CORS_ORIGINS": "https://a.example",
    }
    workers = run_cli("serve", "--workers", "2", "--port", "9", cwd=tmp_path, env=production)
    assert workers.returncode == 2
    assert "server.workers (API_WORKERS, serve --workers): 2 workers need REDIS_URL" in workers.stderr


def test_a_bad_environment_value_stops_with_the_key(tmp_path: Path) -> None:
    result = run_cli("config", "check", cwd=tmp_path, env={"API_PORT": "http"})
    assert result.returncode == 2
    assert "server.port (API_PORT)" in result.stderr


def test_migrate_sql_prints_the_schema_and_the_timescaledb_branch(tmp_path: Path) -> None:
    result = run_cli("migrate", "--sql", cwd=tmp_path, env={"DATABASE_URL": "postgresql://u:p@h:5432/d"})
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE spans" in result.stdout
    assert "create_hypertable('spans'" in result.stdout
    assert "pg_available_extensions" in result.stdout
    sqlite_sql = run_cli("migrate", "--sql", cwd=tmp_path)
    assert sqlite_sql.returncode == 0, sqlite_sql.stderr
    assert "CREATE TABLE traces" in sqlite_sql.stdout
    assert "hypertable" not in sqlite_sql.stdout


def test_migrate_brings_an_empty_postgresql_database_to_head(tmp_path: Path, pg_empty_database: str) -> None:
    result = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": pg_empty_database})
    assert result.returncode == 0, result.stderr
    settings = DatabaseSettings(url=pg_empty_database)

    async def revision() -> str | None:
        engine = create_engine(settings, database_url(settings))
        async with engine.connect() as connection:
            found = await current_revision(connection)
        await engine.dispose()
        return found

    assert asyncio.run(revision()) == head_revision()
    again = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": pg_empty_database})
    assert again.returncode == 0, again.stderr


def test_seed_writes_the_demo_data_into_the_embedded_default(tmp_path: Path) -> None:
    result = run_cli("seed", "--traces", "40", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "seeded 40 traces" in result.stdout
    with sqlite3.connect(tmp_path / "observatory.db") as db:
        assert db.execute("SELECT count(*) FROM traces").fetchone() == (40,)
        spans = db.execute("SELECT count(*) FROM spans").fetchone()[0]
        assert spans >= 40
    assert run_cli("seed", "--traces", "0", cwd=tmp_path).returncode == 2


def test_seeding_again_is_refused_unless_asked_and_never_repeats_an_id(tmp_path: Path) -> None:
    first = run_cli("seed", "--traces", "30", "--end", "2026-11-01T00:00:00Z", cwd=tmp_path)
    assert first.returncode == 0, first.stderr

    refused = run_cli("seed", "--traces", "30", cwd=tmp_path)
    assert refused.returncode == 1
    assert "already holds 30 traces" in refused.stderr and "--append" in refused.stderr

    # Another end time (what `seed` after `serve --demo` does): other ids, nothing mixed in.
    other = run_cli("seed", "--traces", "30", "--append", "--end", "2026-11-05T12:00:00Z", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    # The same seed and end again: nothing new.
    again = run_cli("seed", "--traces", "30", "--append", "--end", "2026-11-01T00:00:00+00:00", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 spans" in again.stdout
    with sqlite3.connect(tmp_path / "observatory.db") as db:
        assert db.execute("SELECT count(*) FROM traces").fetchone() == (60,)
        pairs, distinct = db.execute("SELECT count(*), count(DISTINCT trace_id || span_id) FROM spans").fetchone()
    assert pairs == distinct
    assert run_cli("seed", "--end", "2026-11-01", "--append", cwd=tmp_path).returncode == 2


# The cost last: it is compared apart.
SESSION_ROWS = (
    "SELECT session_id, user_id, environment, first_seen, last_seen, trace_count, error_count, input_tokens, "
    "output_tokens, total_tokens, unpriced_calls, cost_usd FROM sessions ORDER BY session_id"
)


def test_summaries_rebuild_repairs_what_went_around_the_writer(tmp_path: Path) -> None:
    assert run_cli("seed", "--traces", "30", cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "observatory.db") as db:
        before = db.execute(SESSION_ROWS).fetchall()
        db.execute("UPDATE sessions SET trace_count = trace_count + 7, cost_usd = -1")
        db.execute("DELETE FROM traces WHERE trace_id = (SELECT min(trace_id) FROM traces)")

    result = run_cli("summaries", "rebuild", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "rebuilt 30 trace and" in result.stdout
    with sqlite3.connect(tmp_path / "observatory.db") as db:
        assert db.execute("SELECT count(*) FROM traces").fetchone() == (30,)
        after = db.execute(SESSION_ROWS).fetchall()
    # The cost is a float sum: the writer adds per write, the rebuild sums at once (last-bit differences).
    assert [row[:-1] for row in after] == [row[:-1] for row in before]
    assert all(abs(new[-1] - old[-1]) < 1e-9 for new, old in zip(after, before, strict=True))


def test_migrate_names_a_missing_role_or_database_in_one_line(tmp_path: Path) -> None:
    cases = {
        "postgresql://observatory_no_such_role:secret@127.0.0.1:5432/observatory": (
            'role "observatory_no_such_role" does not exist'
        ),
        "postgresql://postgres@127.0.0.1:5432/observatory_no_such_database": (
            'database "observatory_no_such_database" does not exist'
        ),
    }
    for url, reason in cases.items():
        result = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("observatory-api: cannot connect to PostgreSQL at 127.0.0.1:5432")
        assert reason in line and "docs/configuration.md#running-against-postgresql-and-redis" in line
        assert "secret" not in line


def test_serve_without_the_migrations_folder_says_so_in_one_line(tmp_path: Path) -> None:
    # A copy of the package without `migrations/` beside it (a partial copy of the tree): before,
    # the head read as None, equal to an empty database's revision, and the server came up
    # without a schema, answering 500s.
    import observatory_api

    tree = tmp_path / "tree"
    package = Path(observatory_api.__file__).parent
    shutil.copytree(package, tree / "src" / "observatory_api", ignore=shutil.ignore_patterns("__pycache__"))
    database = tmp_path / "observatory.db"  # the embedded default, in the working directory
    with socket.socket() as taken:  # a busy port: the old code stopped there instead (or served)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("serve", "--port", port, cwd=tmp_path, env={"PYTHONPATH": str(tree / "src")})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"no migrations in {tree / 'migrations' / 'versions'}" in result.stderr
    assert not database.exists()
