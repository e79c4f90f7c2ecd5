"""Debian's nginx as the load balancer in front of several `serve` instances, for the end-to-end
tests: its own prefix, configuration and logs in a temporary folder, on a free port of 127.0.0.1.

Round robin over the instances, with the proxy settings compose deploys
(deploy/nginx/observatory-proxy.conf, included as is)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The proxy settings compose deploys (deploy/nginx/nginx.conf includes the same file).
PROXY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "observatory-proxy.conf"
UPSTREAM_LOG = "upstream.log"

CONFIG = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$upstream_addr $status $request_method $uri';
    access_log {prefix}/{upstream_log} upstream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream observatory {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://observatory;
            include {proxy_conf};
        }}
    }}
}}
"""


@dataclass(frozen=True)
class LoadBalancer:
    base: str
    prefix: Path

    def upstreams(self) -> list[str]:
        """The instance (`127.0.0.1:port`) that answered each request so far, in order."""
        lines = (self.prefix / UPSTREAM_LOG).read_text().splitlines()
        return [line.split()[0] for line in lines]


def nginx_config(prefix: Path, port: int, upstream_ports: Sequence[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports)
    # As root nginx hands its workers to `nobody`, who cannot enter pytest's private folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return CONFIG.format(
        user=user, prefix=prefix, upstream_log=UPSTREAM_LOG, servers=servers, port=port, proxy_conf=PROXY_CONF
    )


@contextlib.contextmanager
def load_balancer(prefix: Path, upstream_ports: Sequence[int]) -> Iterator[LoadBalancer]:
    if not Path(NGINX).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed; CI needs it (apt-get install nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, port, upstream_ports))
    checked = subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    log = (prefix / "nginx.out").open("w")
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    balancer = LoadBalancer(f"http://127.0.0.1:{port}", prefix)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{balancer.base}/alive", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {(prefix / 'error.log').read_text()}")
                time.sleep(0.1)
        yield balancer
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGQUIT)  # graceful: the requests in progress finish
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
