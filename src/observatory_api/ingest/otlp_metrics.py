"""OTLP metrics are accepted and counted, not stored.

Every SDK set up with the defaults exports metrics next to its traces; answering 404 made it log
an error every minute. The GenAI metrics (token usage, operation duration, time to first token)
are aggregates of what the spans already carry, and the metric engine computes them from the
stored spans at any grain, so a second copy would only drift from the first. The answer is a
`partial_success` with 0 rejected (no exporter counts it as a failure) whose message says so.
"""

from __future__ import annotations

from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from observatory_api.ingest.limits import MalformedExport
from observatory_api.observability.metrics import ingest_metric_points_discarded_total

NOT_STORED = (
    "metrics are accepted but not stored: observatory derives LLM metrics (tokens, cost, latency, "
    "time to first token) from the spans; see docs/ingest.md#sending-telemetry"
)
_POINT_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")


def points_in_protobuf(body: bytes) -> int:
    request = ExportMetricsServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedExport(f"not an OTLP ExportMetricsServiceRequest in protobuf ({exc})") from None
    return points_in_message(request)


def points_in_message(request: ExportMetricsServiceRequest) -> int:
    count = 0
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    count += len(getattr(metric, kind).data_points)
    return count


def points_in_json(body: bytes) -> int:
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedExport(f"not JSON ({exc})") from None
    if not isinstance(request, dict):
        raise MalformedExport("an OTLP ExportMetricsServiceRequest is a JSON object")
    count = 0
    for resource in _list(request, "resourceMetrics", "resource_metrics"):
        for scope in _list(resource, "scopeMetrics", "scope_metrics"):
            for metric in _list(scope, "metrics"):
                for kind in _POINT_KINDS:
                    data = metric.get(kind) if isinstance(metric, dict) else None
                    if isinstance(data, dict):
                        count += len(_list(data, "dataPoints", "data_points"))
    return count


def _list(node: Any, *names: str) -> list[Any]:
    for name in names:
        value = node.get(name) if isinstance(node, dict) else None
        if isinstance(value, list):
            return value
    return []


def discard(points: int) -> ExportMetricsServiceResponse:
    """Counts the points and answers with the message that says they are not stored."""
    ingest_metric_points_discarded_total.inc(points)
    response = ExportMetricsServiceResponse()
    response.partial_success.rejected_data_points = 0
    response.partial_success.error_message = NOT_STORED
    return response
