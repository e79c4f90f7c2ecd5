"""Several `serve` instances (one granian worker each) sharing one database and one Redis: the
many-instances tests and bench/scaling.py start them the same way."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import TEST_AUTH
from tests.e2e.server import UNSET, RunningServer, free_port, start_server


def fleet_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """What every instance and the CLI beside them run with: the same database, Redis and secrets."""
    return {
        **{name: value for name, value in os.environ.items() if name not in UNSET},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # The instances and the CLI share the secrets the tests sign with.
        "JWT_SECRET": TEST_AUTH.jwt_secret or "",
        "SECRET_KEY": TEST_AUTH.secret_key or "",
        **extra,
    }


def instance_workdirs(root: Path, count: int, config: str) -> list[Path]:
    """One working folder per instance under `root`, each with `config` as its api-config.yml."""
    workdirs = []
    for index in range(count):
        workdir = root / f"instance{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "api-config.yml").write_text(config)
        workdirs.append(workdir)
    return workdirs


@dataclass
class Instances:
    """Running instances, each on its own fixed port, so one can be restarted at the same address."""

    workdirs: list[Path]
    env: dict[str, str]
    ports: list[int] = field(default_factory=list)
    servers: list[RunningServer] = field(default_factory=list)
    _contexts: list[contextlib.ExitStack] = field(default_factory=list)

    def restart(self, index: int) -> None:
        """SIGTERM to one instance (it drains), then the same instance again on the same port."""
        self._contexts[index].close()
        self.servers[index] = self._start(index)

    def _start(self, index: int) -> RunningServer:
        context = contextlib.ExitStack()
        server = context.enter_context(
            start_server(self.workdirs[index], workers=1, env=self.env, port=self.ports[index])
        )
        if index < len(self._contexts):
            self._contexts[index] = context
        else:
            self._contexts.append(context)
        return server

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@contextlib.contextmanager
def running_instances(workdirs: list[Path], env: dict[str, str]) -> Iterator[Instances]:
    """Every workdir served on a free port; all stopped when left, restarted ones included."""
    instances = Instances(workdirs, env, ports=[free_port() for _ in workdirs])
    try:
        for index in range(len(workdirs)):
            instances.servers.append(instances._start(index))
        yield instances
    finally:
        instances.close()
