"""What the gRPC server derives from names and peers, without a server."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from observatory_api.core.errors import InvalidInput, RateLimited, Unavailable
from observatory_api.ingest.grpc_server import SERVICES, peer_host, refusal_of, service_name


def test_the_services_are_those_the_exporters_call() -> None:
    assert [service_name(module, name) for module, name, _ in SERVICES] == [
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "opentelemetry.proto.collector.logs.v1.LogsService",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
    ]


@pytest.mark.parametrize(
    ("peer", "host"),
    [("ipv4:127.0.0.1:51234", "127.0.0.1"), ("ipv6:[::1]:51234", "::1"), ("unix:/tmp/socket", "/tmp/socket")],
)
def test_the_peer_host_feeds_the_per_ip_buckets(peer: str, host: str) -> None:
    assert peer_host(peer) == host


def test_retryable_refusals_carry_retry_info_and_the_others_do_not() -> None:
    busy = refusal_of(Unavailable("ingest is busy; retry later", headers={"Retry-After": "2"}))
    assert busy.code == grpc.StatusCode.UNAVAILABLE
    metadata = dict(busy.trailing_metadata())
    assert error_details_pb2.RetryInfo.FromString(metadata["google.rpc.retryinfo-bin"]).retry_delay.seconds == 2
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Is(
        error_details_pb2.RetryInfo.DESCRIPTOR
    )
    limited = refusal_of(RateLimited("the role limit is used up", headers={"Retry-After": "17"}))
    assert limited.code == grpc.StatusCode.RESOURCE_EXHAUSTED and limited.retry_seconds == 17
    invalid = refusal_of(InvalidInput("body: not an export"))
    assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT and invalid.trailing_metadata() == ()
