"""The Prometheus endpoint of a multi-worker server, run by the `serve` launcher (never by a worker).

granian forks its workers from the launcher. Each worker writes its metric values to files in
`PROMETHEUS_MULTIPROC_DIR`; the launcher, which handles no requests, serves the sum of those files
on `server.metrics_port` at `/metrics`. Only one process binds the port, so any number of workers
(and respawned ones) works. Order matters: `prepare_multiprocess_dir` runs before anything imports
prometheus_client, because prometheus_client picks its value storage at import time.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(?P<pid>\d+)\.db$")
logger = logging.getLogger("observatory_api.metrics")


@dataclass
class MultiprocessDir:
    path: Path
    # True when the launcher made the folder itself and removes it at exit.
    owned: bool

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def prepare_multiprocess_dir(environ: MutableMapping[str, str] | None = None) -> MultiprocessDir:
    """Create or empty `PROMETHEUS_MULTIPROC_DIR` (a fresh temporary folder when unset) and export it.

    Files left by an earlier run would add their counts to this one, so the folder is emptied here,
    once, by the launcher: a worker that wiped it would erase the other workers' values. Only the
    `*.db` files prometheus_client writes are removed from a folder the operator named.
    """
    environ = os.environ if environ is None else environ
    configured = environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        result = MultiprocessDir(path=path, owned=False)
    else:
        result = MultiprocessDir(path=Path(tempfile.mkdtemp(prefix="observatory-prometheus-")), owned=True)
    environ[MULTIPROC_ENV] = str(result.path)
    return result


def reap_dead_workers(path: Path, is_alive: Callable[[int], bool] | None = None) -> list[int]:
    """Drop the live-gauge files of workers that exited (crashed, respawned, or stopped).

    `livesum` gauges (requests in flight, pool connections, cache size) must not keep a dead
    worker's last value. Counters and histograms of dead workers are kept: their counts happened.
    """
    from prometheus_client import multiprocess

    is_alive = is_alive or _pid_alive
    dead = sorted(
        {
            int(match["pid"])
            for file in path.iterdir()
            if (match := _LIVE_GAUGE_FILE.match(file.name)) and not is_alive(int(match["pid"]))
        }
    )
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]  # unannotated upstream
    return dead


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by granian) is not alive for our purpose.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class WorkerProcessCollector:
    """`process_*` metrics of the launcher and its workers together (prometheus_client's own
    process collector sees one process). CPU seconds and memory are sums over the live processes,
    so a restarted worker shows as a counter reset, which `rate()` handles."""

    def __init__(self, root_pid: int | None = None) -> None:
        self.root_pid = root_pid or os.getpid()

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import ProcessCollector
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        totals: dict[str, float] = {}
        starts: list[float] = []
        workers = _children(self.root_pid)
        for pid in (self.root_pid, *workers):
            # `pid` is a callable returning the process id; partial binds this iteration's.
            collector = ProcessCollector(namespace="", pid=partial(int, pid), registry=None)
            for family in collector.collect():
                for sample in family.samples:
                    if sample.name == "process_start_time_seconds":
                        starts.append(sample.value)
                    elif sample.name == "process_max_fds":
                        totals[sample.name] = sample.value
                    else:
                        totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        if not totals:
            return
        if "process_cpu_seconds_total" in totals:
            cpu = CounterMetricFamily(
                "process_cpu_seconds", "CPU seconds of the launcher and its live workers.", unit="seconds"
            )
            cpu.add_metric([], totals["process_cpu_seconds_total"])
            yield cpu
        for name, help_text in (
            ("process_resident_memory_bytes", "Resident memory of the launcher and its live workers."),
            ("process_virtual_memory_bytes", "Virtual memory of the launcher and its live workers."),
            ("process_open_fds", "Open file descriptors of the launcher and its live workers."),
            ("process_max_fds", "Maximum number of open file descriptors of one process."),
        ):
            if name in totals:
                yield GaugeMetricFamily(name, help_text, value=totals[name])
        if starts:
            yield GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the launcher, in seconds since the epoch.",
                value=min(starts),
            )
        yield GaugeMetricFamily(
            "observatory_api_worker_processes", "Live worker processes under this launcher.", value=len(workers)
        )


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields and fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def multiprocess_registry(path: Path) -> Any:
    """A registry holding the workers' values (summed) and the process metrics of the whole group."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]  # unannotated upstream
    registry.register(WorkerProcessCollector())
    return registry


def metrics_wsgi_app(registry: Any, *, before_scrape: Callable[[], object] | None = None) -> Callable[..., Any]:
    """`/metrics` only: any other path is a 404, so the port answers nothing but the scrape."""
    from prometheus_client import make_wsgi_app

    serve = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") not in (METRICS_PATH, METRICS_PATH + "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: metrics are served at /metrics\n"]
        if before_scrape is not None:
            try:
                before_scrape()
            except Exception:  # a failed cleanup must not cost the scrape
                logger.exception("could not reap the metric files of exited workers")
        body: Iterable[bytes] = serve(environ, start_response)
        return body

    return app


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread
    port: int
    _closed: bool = field(default=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.server.shutdown()
            self.server.server_close()


def start_metrics_server(host: str, port: int, registry: Any, **app_options: Any) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics from a daemon thread.

    Raises OSError (e.g. EADDRINUSE) when the port cannot be bound, before any worker starts.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    class _QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes every 15 s would flood the log."""

    server = make_server(
        host, port, metrics_wsgi_app(registry, **app_options), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="observatory-metrics", daemon=True)
    thread.start()
    return MetricsServer(server=server, thread=thread, port=server.server_port)


def start_launcher_metrics(host: str, port: int, directory: MultiprocessDir) -> MetricsServer:
    """The `serve` launcher's metrics endpoint: every worker's values, summed, at /metrics."""
    return start_metrics_server(
        host, port, multiprocess_registry(directory.path), before_scrape=lambda: reap_dead_workers(directory.path)
    )
