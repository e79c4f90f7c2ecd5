"""What `serve` says and does before granian starts: ports checked, the metrics port's fallback,
and the demo seeding's progress bar. Each problem is one line naming it, never a traceback."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from observatory_api.observability.metrics_server import MetricsServer, MultiprocessDir


class StartupError(Exception):
    """A reason `serve` cannot start, told in one line."""


def say(message: str) -> None:
    print(f"observatory-api: {message}", flush=True)


def check_port_free(host: str, port: int) -> None:
    """Raise StartupError when `host:port` cannot be bound (in use, or not an address of this host).

    Checked before the demo is seeded and before granian starts, whose own failure is a long
    traceback. The socket is closed at once: another process could still take the port meanwhile.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as granian binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(_bind_problem(host, port, exc, what="the API")) from None


def _bind_problem(host: str, port: int, exc: OSError, *, what: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot serve {what} on {host}:{port}: the port is in use by another process "
            f"(choose another with --port or API_PORT; `ss -ltnp 'sport = :{port}'` shows which)"
        )
    return f"cannot serve {what} on {host}:{port}: {exc.strerror or exc}"


def start_metrics(host: str, port: int, directory: MultiprocessDir, *, fall_back: bool) -> MetricsServer:
    """The launcher's metrics endpoint on `port`; when that port is busy and `fall_back` (development
    and test), on a free port instead, said on stdout. Elsewhere a busy port stops start-up."""
    from observatory_api.observability.metrics_server import start_launcher_metrics

    try:
        return start_launcher_metrics(host, port, directory)
    except OSError as exc:
        if not (fall_back and exc.errno == errno.EADDRINUSE):
            problem = _bind_problem(host, port, exc, what="metrics").replace("--port or API_PORT", "API_METRICS_PORT")
            raise StartupError(problem) from None
    server = start_launcher_metrics(host, 0, directory)
    say(f"metrics port {port} is in use; metrics on the free port {server.port} instead (API_METRICS_PORT sets it)")
    return server


@contextmanager
def seeding_progress(total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar (rich) on stderr for `total` traces; yields the `progress(done, total)` callback."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("seeding demo traces"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as progress:
        task = progress.add_task("seed", total=total)

        def advance(done: int, _total: int) -> None:
            progress.update(task, completed=done)

        yield advance
