"""`serve` sets up the workers' metric files before anything imports prometheus_client, which picks
its value storage at import time (observability/metrics_server.py): importing the CLI must not
import it. (An export module imported with the CLI once did: a two-worker server's /metrics lost
every request count, tests/e2e/test_serve.py.)"""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_does_not_import_prometheus_client() -> None:
    script = "import sys, observatory_api.cli; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
