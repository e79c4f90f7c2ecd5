"""A Redis primary, one replica and three Sentinels (Debian's `redis-server` and `redis-sentinel`)
on free ports in a test's folder, with passwords on both the data nodes and the Sentinels. Every
start and stop is bounded; the shared Redis on 6379 is never touched."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from observatory_api.settings import RedisSentinelSettings, RedisSettings

MASTER_NAME = "observatory"
REDIS_PASSWORD = "redis-data-password-for-tests"
SENTINEL_PASSWORD = "sentinel-password-for-tests"
# Sentinels agree that the primary is down after this much silence (the failover's floor).
DOWN_AFTER_MS = 1000
START_SECONDS = 20.0
STOP_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is needed (Debian: apt-get install redis-server redis-sentinel; .ci/run installs them)"
    return found


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SentinelGroup:
    workdir: Path
    primary: Node = field(default_factory=lambda: Node(free_port()))
    replica: Node = field(default_factory=lambda: Node(free_port()))
    sentinels: list[Node] = field(default_factory=lambda: [Node(free_port()) for _ in range(3)])

    def settings(self, **redis: object) -> RedisSettings:
        """What the service is configured with: the Sentinels, the master name, both passwords."""
        sentinel = RedisSentinelSettings(
            hosts=tuple(f"127.0.0.1:{node.port}" for node in self.sentinels),
            master_name=MASTER_NAME,
            password=SENTINEL_PASSWORD,
        )
        return RedisSettings(password=REDIS_PASSWORD, sentinel=sentinel, **redis)  # type: ignore[arg-type]

    def environment(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "REDIS_PASSWORD": REDIS_PASSWORD,
        }

    # -- start and stop --------------------------------------------------------------------

    def start(self) -> None:
        self._start_data_node(self.primary)
        self._start_data_node(self.replica, "--replicaof", "127.0.0.1", str(self.primary.port))
        self._wait(lambda: self.data_client(self.replica).info("replication")["master_link_status"] == "up", "sync")
        for node in self.sentinels:
            self._start_sentinel(node)
        # Each Sentinel has found the replica and the two other Sentinels (hello messages, ~2 s).
        for node in self.sentinels:
            self._wait(lambda node=node: self._sees_everything(node), f"sentinel {node.port} to see the group")

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            self.kill(node)

    def kill(self, node: Node) -> None:
        if node.alive():
            assert node.process is not None
            node.process.kill()
            node.process.wait(timeout=STOP_SECONDS)

    def _start_data_node(self, node: Node, *options: str) -> None:
        command = [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(node.port), "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir), "--dbfilename", f"dump-{node.port}.rdb"]
        command += ["--requirepass", REDIS_PASSWORD, "--masterauth", REDIS_PASSWORD, *options]
        node.process = self._spawn(command, f"redis-{node.port}.log")
        self._wait(lambda: bool(self.data_client(node).ping()), f"redis-server on {node.port}")

    def _start_sentinel(self, node: Node) -> None:
        config = self.workdir / f"sentinel-{node.port}.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {node.port}",
                    f"dir {self.workdir}",
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} 2",
                    f"sentinel auth-pass {MASTER_NAME} {REDIS_PASSWORD}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER_NAME} 10000",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )
        node.process = self._spawn([_binary("redis-sentinel"), str(config)], f"sentinel-{node.port}.log")
        self._wait(lambda: bool(self.sentinel_client(node).ping()), f"redis-sentinel on {node.port}")

    def _spawn(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _sees_everything(self, node: Node) -> bool:
        state = self.sentinel_client(node).sentinel_master(MASTER_NAME)
        assert isinstance(state, dict)
        return int(state["num-other-sentinels"]) == 2 and int(state["num-slaves"]) == 1

    @staticmethod
    def _wait(condition: object, what: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError, KeyError):
                if condition():  # type: ignore[operator]
                    return
            time.sleep(0.05)
        raise AssertionError(f"waited {seconds} s for {what}")

    # -- clients and failover -------------------------------------------------------------

    def data_client(self, node: Node) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, password=REDIS_PASSWORD, socket_timeout=2)

    def sentinel_client(self, node: Node) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, password=SENTINEL_PASSWORD, socket_timeout=2)

    def master_port(self) -> int:
        """The primary's port as the first live Sentinel names it."""
        for node in self.sentinels:
            if node.alive():
                with contextlib.suppress(redis.RedisError):
                    address = self.sentinel_client(node).sentinel_get_master_addr_by_name(MASTER_NAME)
                    assert isinstance(address, list | tuple), address
                    return int(address[1])
        raise AssertionError("no Sentinel answers")

    def current_primary(self) -> Node:
        port = self.master_port()
        return self.primary if port == self.primary.port else self.replica

    def failover(self) -> None:
        """`SENTINEL FAILOVER`: the replica promoted without waiting for the primary to be found down."""
        client = self.sentinel_client(self.sentinels[0])
        assert client.execute_command("SENTINEL FAILOVER", MASTER_NAME)  # type: ignore[no-untyped-call]

    def wait_for_new_primary(self, old: Node, seconds: float = START_SECONDS) -> Node:
        """Until the Sentinels name another primary and it accepts writes; returns it."""
        self._wait(lambda: self.master_port() != old.port, "the Sentinels to name a new primary", seconds)
        new = self.current_primary()
        self._wait(lambda: self.data_client(new).info("replication")["role"] == "master", "the promotion", seconds)
        return new


@contextlib.contextmanager
def sentinel_group(workdir: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(workdir)
    try:
        group.start()
        yield group
    finally:
        group.stop()
