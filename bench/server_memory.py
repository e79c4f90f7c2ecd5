"""A started server's memory, process by process: RSS, PSS and USS of the launcher and each worker.

    PYTHONPATH=src .venv/bin/python bench/server_memory.py --workers 2 --rounds 3

Starts `observatory-api serve --workers N` (ingest on, SQLite in a fresh folder) with whatever
`src` is on PYTHONPATH, waits for /ready and `--settle` seconds, reads /proc/<pid>/status and
smaps_rollup of the launcher and its workers, stops it. Several rounds give the spread.

RSS counts every page a process maps, shared or not, so summed over processes it counts a page
shared by three processes three times. PSS gives each process its share of a shared page (1/3
each), so summed over the processes it counts each page once: what the server costs the machine
(a container's memory limit counts it that way too). USS is what only that process holds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def memory_kib(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + private dirty) of one process, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
        "anon": fields.get("Anonymous", 0),
    }


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found)


def wait_ready(base: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


def one_round(workers: int, settle: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="server-memory-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "INGEST_ENABLED": "true",
            "INGEST_GRPC_PORT": str(free_port()),
            "API_METRICS_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET": secrets.token_hex(32),
            "SECRET_KEY": secrets.token_hex(32),
        }
    )
    port = free_port()
    command = [sys.executable, "-m", "observatory_api", "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(command, env=env, cwd=workdir, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        time.sleep(settle)
        rows = [("launcher", memory_kib(server.pid))]
        rows += [(f"worker {pid}", memory_kib(pid)) for pid in children(server.pid)]
        for name, kib in rows:
            print(f"  {name:14} " + ", ".join(f"{key.upper()} {value / 1024:6.1f}" for key, value in kib.items()))
        total = {key: sum(kib[key] for _, kib in rows) / 1024 for key in ("rss", "pss", "uss")}
        print(f"  summed MB: RSS {total['rss']:.1f}, PSS {total['pss']:.1f}, USS {total['uss']:.1f}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after /ready before reading")
    args = parser.parse_args()
    for number in range(args.rounds):
        print(f"round {number + 1}:")
        one_round(args.workers, args.settle)


if __name__ == "__main__":
    main()
