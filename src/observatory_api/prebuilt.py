"""The app the launcher built before granian forked the workers, handed to each worker instead of a
second build of its own (docs/performance.md, "Memory").

A forked worker holds a copy-on-write copy of the launcher's app: the route handlers, middleware
and schemas stay pages shared with the launcher instead of ~19 MB built again in each worker. The
app opens nothing when built (its lifespan, run by each worker, creates the engines, the Redis
client and the tasks on the worker's own event loop), so a copy is as good as a new build, once the
worker has redone the two things the build did for the launcher's process: the metric values the
build recorded (prometheus_client's multiprocess values are per process) and the logging setup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from litestar import Litestar

from observatory_api.observability.metrics import record_build_info
from observatory_api.settings import Settings


@dataclass(frozen=True)
class _Prebuilt:
    settings: Settings
    app: Litestar
    launcher: int  # the pid that built it: never handed to the process that built it


_prebuilt: _Prebuilt | None = None


def keep_for_workers(settings: Settings, app: Litestar) -> None:
    """Called by the launcher just before granian forks the workers; `app` was built from `settings`."""
    global _prebuilt  # the one channel to a forked worker: granian loads its target by name
    _prebuilt = _Prebuilt(settings, app, os.getpid())


def take_for_worker(settings: Settings) -> Litestar | None:
    """In a forked worker whose settings are those the launcher's app was built with, that app, made
    this process's; otherwise None (the worker builds its own: settings that differ, such as
    tracing or Sentry, which the launcher leaves off; the launcher itself; a spawned worker)."""
    global _prebuilt
    prebuilt = _prebuilt
    if prebuilt is None or prebuilt.launcher == os.getpid() or prebuilt.settings != settings:
        return None
    _prebuilt = None  # a worker serves one app
    app = prebuilt.app
    # The build-info gauge: the launcher's value file is gone, and a worker's first metric write
    # moves every value of the process (the zero series of create_known_series too) to its own file.
    record_build_info()
    if app.logging_config is not None:  # as Litestar's __init__ does (granian reconfigured logging since)
        app.get_logger = app.logging_config.configure()
        app.logger = app.get_logger("litestar")
    return app
