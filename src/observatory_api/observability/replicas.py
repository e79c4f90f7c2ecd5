"""Replica gauges: `db_replica_up{replica}` and `db_replica_lag_seconds{replica}`, kept by the
read router's checks (db/replicas.py). Both series exist, at 0, from the router's creation on."""

from __future__ import annotations

import contextlib

from observatory_api.db.replicas import Replica
from observatory_api.observability import metrics


def publish_replica(replica: Replica) -> None:
    metrics.db_replica_up.labels(replica=replica.name).set(1 if replica.status == "ok" else 0)
    lag = metrics.db_replica_lag_seconds.labels(replica=replica.name)
    # Unknown (unreachable): the last measured value stays, beside up = 0.
    if replica.lag_seconds is not None:
        lag.set(replica.lag_seconds)


def forget_replica(replica: Replica) -> None:
    """At shutdown, so a test's or a reload's replicas do not linger in the process's registry."""
    for gauge in (metrics.db_replica_up, metrics.db_replica_lag_seconds):
        with contextlib.suppress(KeyError):
            gauge.remove(replica.name)
