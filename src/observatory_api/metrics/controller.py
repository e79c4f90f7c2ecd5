"""MetricController: `GET /metrics`, `GET /metrics/{metric_id}`, `POST /metrics/query`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from observatory_api.core.params import IDENT, TIME_FROM, TIME_TO
from observatory_api.core.vocabulary import SPAN_KINDS, SPAN_STATUSES
from observatory_api.metrics.catalogue import AGGREGATIONS, METRICS
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.schemas import MetricCatalogue, MetricQuery, MetricQueryResult, MetricValue
from observatory_api.metrics.values import catalogue, checked_metric_value
from observatory_api.openapi_docs import link
from observatory_api.operations import ResourceController, api_get, api_post
from observatory_api.security.permissions import content_allowed
from observatory_api.settings import Settings

# The enums document what `checked_metric_value` checks (an unknown metric id is a 404).
METRIC_ID = PathParameter(
    max_length=100,
    description="A metric id from `GET /metrics`, e.g. `cost_usd`.",
    schema_extra={"enum": list(METRICS)},
)
AGGREGATION = QueryParameter(
    required=False,
    max_length=16,
    description="Default: the metric's default.",
    schema_extra={"enum": list(AGGREGATIONS)},
)
STATUS = QueryParameter(required=False, max_length=8, schema_extra={"enum": list(SPAN_STATUSES)})
KIND = QueryParameter(required=False, max_length=16, schema_extra={"enum": list(SPAN_KINDS)})


class MetricController(ResourceController):
    path = "/metrics"

    @api_get(
        "/",
        "list_metrics",
        "The metric catalogue",
        metric=link("get_metric", "The first metric.", metric_id="data/0/id"),
    )
    async def list_metrics(self) -> MetricCatalogue:
        """Every metric with its unit, aggregations and dimensions, the intervals, and the
        dimensions that group only as a top-N."""
        return catalogue()

    @api_get("/{metric_id:str}", "get_metric", "A metric's value, against the previous period", 404)
    async def get_metric(
        self,
        metric_repository: NamedDependency[MetricRepository],
        settings: NamedDependency[Settings],
        metric_id: Annotated[str, METRIC_ID],
        from_: Annotated[datetime | None, TIME_FROM] = None,
        to: Annotated[datetime | None, TIME_TO] = None,
        aggregation: Annotated[str | None, AGGREGATION] = None,
        provider: Annotated[str | None, IDENT] = None,
        model: Annotated[str | None, IDENT] = None,
        service: Annotated[str | None, IDENT] = None,
        environment: Annotated[str | None, IDENT] = None,
        status: Annotated[str | None, STATUS] = None,
        kind: Annotated[str | None, KIND] = None,
        finish_reason: Annotated[str | None, IDENT] = None,
        user_id: Annotated[str | None, IDENT] = None,
        session_id: Annotated[str | None, IDENT] = None,
        tag: Annotated[str | None, IDENT] = None,
    ) -> MetricValue:
        """The definition, the value over `from`/`to` (default aggregation unless `aggregation`
        is given), the value over the equally long period just before, and the change. The other
        parameters keep only spans with that value."""
        return await checked_metric_value(
            metric_repository,
            settings.query,
            metric_id=metric_id,
            aggregation=aggregation,
            start=from_,
            end=to,
            given={
                "provider": provider,
                "model": model,
                "service": service,
                "environment": environment,
                "status": status,
                "kind": kind,
                "finish_reason": finish_reason,
                "user_id": user_id,
                "session_id": session_id,
                "tag": tag,
            },
        )

    @api_post("/query", "query_metrics", "Aggregate metrics by group and time bucket", 413)
    async def query_metrics(
        self,
        request: Request[Any, Any, Any],
        metric_repository: NamedDependency[MetricRepository],
        settings: NamedDependency[Settings],
        data: JSONBody[MetricQuery],
    ) -> MetricQueryResult:
        """Example: `{"metrics": [{"id": "cost_usd", "aggregation": "sum"}, {"id": "request_count"}],
        "group_by": ["model"], "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z",
        "interval": "day"}`. One series per group with a point per bucket (empty buckets: 0 for
        counts and sums, null for averages and percentiles) and totals, plus the overall totals."""
        plan = plan_query(data, settings.query, allow_content=content_allowed(request))
        return await metric_repository.query(plan)
