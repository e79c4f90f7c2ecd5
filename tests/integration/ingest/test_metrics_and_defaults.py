"""`/v1/metrics` is accepted and counted, not stored; ingest is on in development only by default,
and where it is off the OTLP paths say how to turn it on."""

from __future__ import annotations

import gzip

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

from observatory_api.app import create_app
from observatory_api.ingest.controller import INGEST_DISABLED
from observatory_api.ingest.otlp_metrics import NOT_STORED
from observatory_api.settings import DatabaseSettings, FeatureSettings, Settings
from tests.conftest import make_settings
from tests.integration.ingest.helpers import counter, ingest_client
from tests.integration.ingest.payloads import JSON, PROTOBUF, as_json

POINTS = "ingest_metric_points_discarded_total"


def metrics_request() -> ExportMetricsServiceRequest:
    """GenAI client metrics as the instrumentations emit them: 2 histogram points and 1 sum point."""
    tokens = Metric(
        name="gen_ai.client.token.usage",
        unit="{token}",
        histogram=Histogram(data_points=[HistogramDataPoint(count=1, sum=120.0), HistogramDataPoint(count=1, sum=9.0)]),
    )
    calls = Metric(name="llm.calls", sum=Sum(data_points=[NumberDataPoint(as_int=3)], is_monotonic=True))
    scope = ScopeMetrics(metrics=[tokens, calls])
    return ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(scope_metrics=[scope])])


async def test_metrics_are_accepted_with_a_partial_success_saying_they_are_not_stored(
    migrated_database: DatabaseSettings,
) -> None:
    async with ingest_client(migrated_database) as (client, headers):
        before = counter(POINTS)
        body = gzip.compress(metrics_request().SerializeToString())
        response = await client.post(
            "/v1/metrics", content=body, headers={**headers, **PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert response.status_code == 200, response.text
        answer = ExportMetricsServiceResponse.FromString(response.content)
        assert answer.partial_success.rejected_data_points == 0
        assert answer.partial_success.error_message == NOT_STORED
        as_json_body = await client.post("/v1/metrics", json=as_json(metrics_request()), headers=headers)
        assert as_json_body.status_code == 200, as_json_body.text
        assert as_json_body.json() == {"partialSuccess": {"rejectedDataPoints": "0", "errorMessage": NOT_STORED}}
        assert counter(POINTS) == before + 6
        malformed = await client.post("/v1/metrics", content=b"\xff\xff\xff", headers={**headers, **PROTOBUF})
        assert malformed.status_code == 400 and malformed.json()["errors"][0]["field"] == "body"
        assert (await client.post("/v1/metrics", content=b"[]", headers={**headers, **JSON})).status_code == 400
        # The ingest role is needed here as on /v1/traces.
        assert (await client.post("/v1/metrics", json={}, headers={})).status_code == 401


async def test_a_disabled_ingest_says_how_to_turn_it_on(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database)
    assert not settings.ingest_enabled
    async with AsyncTestClient(create_app(settings)) as client:
        for path in ("/v1/traces", "/v1/logs", "/v1/metrics"):
            response = await client.post(path, content=b"", headers=PROTOBUF)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["detail"] == INGEST_DISABLED
            assert "INGEST_ENABLED=true" in INGEST_DISABLED
        assert "/v1/traces" not in (await client.get("/schema/openapi.json")).json()["paths"]


@pytest.mark.parametrize(
    ("environment", "switch", "enabled"),
    [
        ("development", None, True),
        ("test", None, False),
        ("staging", None, False),
        ("production", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
def test_ingest_is_on_by_default_in_development_only(environment: str, switch: bool | None, enabled: bool) -> None:
    settings = Settings(environment=environment, features=FeatureSettings(ingest=switch))  # type: ignore[arg-type]
    assert settings.ingest_enabled is enabled
