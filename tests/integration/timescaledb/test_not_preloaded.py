"""`migrate` decides by what the server can do: TimescaleDB's files without
`shared_preload_libraries` give plain tables and one line saying why, not a failed migration."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_URL, PLAIN_POSTGRES_URL
from tests.integration.test_cli import run_cli


def _as_postgres(*command: str) -> None:
    if os.geteuid() == 0:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)], check=True, timeout=120)
    else:
        subprocess.run(command, check=True, timeout=120)


async def _fetch(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def unpreloaded_server() -> Iterator[str]:
    """A private PostgreSQL run from the test TimescaleDB's tree (the extension's files are there)
    without `shared_preload_libraries`: a server with TimescaleDB installed but not preloaded."""
    data_directory = Path(str(asyncio.run(_fetch(ADMIN_URL, "SHOW data_directory"))))
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    binaries = data_directory.parent / "tree" / bindir.lstrip("/")  # ../shared/timescaledb/start.sh's layout
    assert (binaries / "postgres").exists(), f"no PostgreSQL tree beside {data_directory}"
    root = Path(tempfile.mkdtemp(prefix="observatory-unpreloaded-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    _as_postgres(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\nfsync = off\n")
    _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def new_database() -> Iterator[Callable[[str], str]]:
    """Makes an empty database on a server (admin URL) and returns its URL; all dropped after."""
    made: list[tuple[str, str]] = []

    def make(server: str) -> str:
        name = f"observatory_test_preload_{uuid.uuid4().hex[:8]}"
        asyncio.run(_fetch(server, f'CREATE DATABASE "{name}"'))
        made.append((server, name))
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    yield make
    for server, name in made:
        asyncio.run(_fetch(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migrate_on_a_server_with_timescaledb_not_preloaded(
    unpreloaded_server: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    available = asyncio.run(
        _fetch(unpreloaded_server, "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    )
    assert available  # the files are there: the old test (pg_available_extensions) chose TimescaleDB
    url = new_database(unpreloaded_server)
    result = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    report = result.stdout.strip().splitlines()[-1]
    assert "not in shared_preload_libraries" in report and "plain tables" in report, result.stdout
    assert asyncio.run(_fetch(url, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")) == 0
    # The tables work as on plain PostgreSQL.
    seeded = run_cli("seed", "--traces", "20", cwd=tmp_path, env={"DATABASE_URL": url})
    assert seeded.returncode == 0, seeded.stderr
    assert asyncio.run(_fetch(url, "SELECT count(*) FROM traces")) == 20


def test_migrate_says_what_it_made_on_timescaledb_and_on_plain_postgresql(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    on_timescaledb = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": new_database(ADMIN_URL)})
    assert on_timescaledb.returncode == 0, on_timescaledb.stderr
    assert "TimescaleDB 2." in on_timescaledb.stdout and "spans and logs are hypertables" in on_timescaledb.stdout
    on_plain = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": new_database(PLAIN_POSTGRES_URL)})
    assert on_plain.returncode == 0, on_plain.stderr
    assert "plain PostgreSQL: TimescaleDB is not installed on this server" in on_plain.stdout
