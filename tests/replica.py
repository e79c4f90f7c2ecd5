"""A real streaming replica of the test PostgreSQL (127.0.0.1:5432), for tests/integration/replicas.

`pg_basebackup -R -X stream` copies the running cluster into a temporary folder (with its own
replication slot, so WAL the replica still needs is kept while it is stopped or paused), and the
system's `pg_ctl` starts it as a hot standby on a free port. As root, PostgreSQL refuses to run:
then everything runs as the `postgres` OS user, in a folder it owns. The primary's pg_hba.conf must
allow `host replication postgres 127.0.0.1/32 trust` (`.ci/run` adds it). Anything missing fails
the tests with what to do; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_URL

# The server of the PostgreSQL-backed tests: the plain PostgreSQL, or TimescaleDB in its CI pass.
_PRIMARY = make_url(ADMIN_URL)
PRIMARY_HOST, PRIMARY_PORT = _PRIMARY.host or "127.0.0.1", _PRIMARY.port or 5432
SLOT_PREFIX = "observatory_test_replica_"
# Settings a hot standby must hold at least as high as its primary, or it refuses to start.
_AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)
# ...and what the primary loads: a TimescaleDB standby needs the extension preloaded too.
_AS_PRIMARY = ("shared_preload_libraries", "timescaledb.max_background_workers", "timescaledb.telemetry_level")
_HBA_HINT = (
    "the primary's pg_hba.conf needs `host replication postgres 127.0.0.1/32 trust` "
    "(.ci/run adds it; then `pg_ctlcluster --skip-systemctl-redirect 15 main reload`)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres() -> list[str]:
    """PostgreSQL will not run as root: its commands then run as the `postgres` OS user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(command: list[str], what: str, *, timeout: float = 120) -> None:
    try:
        done = subprocess.run([*_as_postgres(), *command], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{what}: {exc}", pytrace=False)
    if done.returncode != 0:
        hint = f"; {_HBA_HINT}" if "pg_hba.conf" in done.stderr else ""
        pytest.fail(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}{hint}", pytrace=False)


async def primary_connection(database: str = "postgres") -> asyncpg.Connection:
    return await asyncpg.connect(host=PRIMARY_HOST, port=PRIMARY_PORT, user="postgres", database=database, timeout=5)


class StreamingReplica:
    """A standby of the test PostgreSQL on `port`; `stop()` kills it (immediate shutdown), `start()`
    brings it back, `pause_replay()` / `resume_replay()` make it lag, `caught_up()` waits for it."""

    def __init__(self, root: Path, port: int, slot: str, bin_dir: Path) -> None:
        self.root, self.port, self.slot, self.bin_dir = root, port, slot, bin_dir
        self.data = root / "data"

    @property
    def name(self) -> str:
        """As the service names it: host:port."""
        return f"127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "starting the replica",
        )

    def stop(self) -> None:
        """Immediate shutdown: connections are cut as if the server died."""
        _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            "stopping the replica",
        )

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    async def connection(self, database: str = "postgres") -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database=database, timeout=5)

    async def pause_replay(self, timeout: float = 30) -> None:
        """Pause replay and wait until it has paused: `pg_wal_replay_pause()` only requests it, and
        a write committed meanwhile may still be replayed (seen in CI: a test that relied on the
        replica not holding its write found the write there)."""
        connection = await self.connection()
        try:
            await connection.execute("SELECT pg_wal_replay_pause()")
            deadline = asyncio.get_running_loop().time() + timeout
            while await connection.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
                assert asyncio.get_running_loop().time() < deadline, "replay never paused"
                await asyncio.sleep(0.02)
        finally:
            await connection.close()

    async def resume_replay(self) -> None:
        connection = await self.connection()
        try:
            await connection.execute("SELECT pg_wal_replay_resume()")
        finally:
            await connection.close()

    async def caught_up(self, timeout: float = 60) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        primary = await primary_connection()
        try:
            target = await primary.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        finally:
            await primary.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                connection = await self.connection()
                try:
                    behind = await connection.fetchval(
                        "SELECT pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()) > 0", target
                    )
                finally:
                    await connection.close()
                if not behind:
                    return
            except (OSError, asyncpg.CannotConnectNowError):
                pass  # starting up
            if time.monotonic() > deadline:
                pytest.fail(f"the replica did not replay up to {target} within {timeout} s", pytrace=False)
            await asyncio.sleep(0.1)


async def _primary_settings() -> dict[str, str]:
    try:
        connection = await primary_connection()
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required at {PRIMARY_HOST}:{PRIMARY_PORT}: {exc}", pytrace=False)
    try:
        rows = await connection.fetch(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", [*_AT_LEAST_PRIMARY, *_AS_PRIMARY]
        )
        data_directory = await connection.fetchval("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
        # Slots of earlier runs that died before dropping theirs would keep WAL on the primary
        # forever; a slot whose test process still runs (its replica merely stopped) is kept.
        stale = await connection.fetch(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active", f"{SLOT_PREFIX}%"
        )
        for row in stale:
            if not _process_alive(row["slot_name"].removeprefix(SLOT_PREFIX).split("_")[0]):
                await connection.execute("SELECT pg_drop_replication_slot($1)", row["slot_name"])
    finally:
        await connection.close()
    return {row["name"]: row["setting"] for row in rows} | {"data_directory": data_directory}


def _server_binaries(data_directory: str) -> Path:
    """The folder of the primary's own binaries (its postmaster's executable), so that a standby of
    the TimescaleDB server runs with the PostgreSQL tree that has the extension;
    OBSERVATORY_TEST_PG_BIN overrides."""
    if "OBSERVATORY_TEST_PG_BIN" in os.environ:
        return Path(os.environ["OBSERVATORY_TEST_PG_BIN"])
    try:
        pid = (Path(data_directory) / "postmaster.pid").read_text().split()[0]
        return Path(os.readlink(f"/proc/{pid}/exe")).parent
    except (OSError, IndexError):
        return Path("/usr/lib/postgresql/15/bin")


def _process_alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


async def _drop_slot(slot: str) -> None:
    connection = await primary_connection()
    try:
        await connection.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot
        )
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def streaming_replica() -> AsyncIterator[StreamingReplica]:
    """A running standby of the test PostgreSQL; stopped, its slot dropped and its files removed on exit."""
    settings = await _primary_settings()
    pg_bin = _server_binaries(settings.pop("data_directory"))
    for tool in ("pg_basebackup", "pg_ctl"):
        if not (pg_bin / tool).is_file():
            pytest.fail(f"{pg_bin / tool} is required for the replica tests (the server's own package)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="observatory-replica-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    root.chmod(0o700)
    replica = StreamingReplica(root, _free_port(), f"{SLOT_PREFIX}{os.getpid()}_{root.name[-8:].lower()}", pg_bin)
    basebackup = str(pg_bin / "pg_basebackup")
    try:
        _run(
            [
                basebackup,
                "-h",
                PRIMARY_HOST,
                "-p",
                str(PRIMARY_PORT),
                "-U",
                "postgres",
                "-D",
                str(replica.data),
                "-R",
                "-X",
                "stream",
                # At once: a spread checkpoint takes minutes on a server the suite has written to.
                "--checkpoint=fast",
                "-C",
                "-S",
                replica.slot,
            ],
            "pg_basebackup from the test PostgreSQL",
            timeout=300,
        )
        _write_config(replica, settings)
        replica.start()
        yield replica
    finally:
        if replica.is_running():
            with contextlib.suppress(BaseException):
                replica.stop()
        with contextlib.suppress(Exception):
            await _drop_slot(replica.slot)
        shutil.rmtree(root, ignore_errors=True)


def _write_config(replica: StreamingReplica, primary: dict[str, str]) -> None:
    """Debian keeps the cluster's configuration in /etc: the copy gets its own, as the postgres user
    owns it. `-R` wrote primary_conninfo and standby.signal already."""
    lines = [
        f"port = {replica.port}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{replica.root}'",
        "hot_standby = on",
        "hot_standby_feedback = on",
        "fsync = off",
        "shared_buffers = 32MB",
        "logging_collector = off",
        *(f"{name} = '{value}'" for name, value in primary.items()),
    ]
    hba = ["local all all trust", "host all all 127.0.0.1/32 trust"]
    for name, text in (("postgresql.conf", lines), ("pg_hba.conf", hba), ("pg_ident.conf", [])):
        path = replica.data / name
        path.write_text("\n".join(text) + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
