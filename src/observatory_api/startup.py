"""What `serve` says and does before granian starts: ports checked, the metrics port's fallback,
the workers' imports loaded once in the launcher, and the demo seeding's progress bar. Each
problem is one line naming it, never a traceback."""

from __future__ import annotations

import contextlib
import errno
import gc
import multiprocessing
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from observatory_api.settings import ObservabilitySettings

if TYPE_CHECKING:
    from observatory_api.observability.metrics_server import MetricsServer, MultiprocessDir
    from observatory_api.settings import Settings


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


def preload_worker_imports(settings: Settings, metrics_dir: Path) -> None:
    """Load in the launcher what every worker loads, just before granian forks them.

    granian (2.8, Python < 3.14 on Linux) forks its workers from the launcher and each loads the
    app after the fork. Built here once (`create_app` imports what the settings turn on, and opens
    nothing: the lifespan does that in each worker), the modules, pyarrow and the app itself are
    pages the workers share with the launcher copy-on-write instead of ~100-150 MB each of their
    own: a worker takes this app (`prebuilt.take_for_worker`) instead of building its own
    (docs/performance.md, "Memory"). Frozen out of the collector so that a worker's collections do
    not write to them. Not for `--reload`: the reloader forks new workers from this process, which
    would keep the old code.
    """
    if multiprocessing.get_start_method() != "fork":
        return  # spawned workers (granian on Python 3.14) share nothing with the launcher
    from observatory_api.app import create_app
    from observatory_api.prebuilt import keep_for_workers

    # Without Sentry and tracing, which would start their exporters in the launcher: a worker
    # with either on builds its own app (prebuilt.take_for_worker compares the settings).
    built = settings.replace(observability=ObservabilitySettings())
    keep_for_workers(built, create_app(built))
    if settings.query.preload_parquet:
        with contextlib.suppress(ImportError):  # the optional [parquet] extra
            import pyarrow.parquet  # noqa: F401
    # The metric definitions just imported made value files for this process: the launcher serves
    # no requests, and its zeros in a `livemin` gauge would hide the workers' values.
    for own in metrics_dir.glob(f"*_{os.getpid()}.db"):
        own.unlink(missing_ok=True)
    gc.collect()
    gc.freeze()


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
