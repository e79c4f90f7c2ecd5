"""The metric catalogue: every metric, aggregation and dimension a query may name.

Metric queries are built only from these entries; a name that is not here is refused (400).
Model calls are spans of kind `llm` or `embedding` (every call to a model API); the per-call
metrics count and measure those. Token counts follow `models.pricing` (input includes cached
tokens, output includes reasoning tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Double, and_, case, cast

MetricKind = Literal["count", "ratio", "measure", "distinct"]
PERCENTILES: dict[str, float] = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
ADDITIVE = ("count", "sum", "avg", "min", "max")
AGGREGATIONS = (*ADDITIVE, *PERCENTILES)
MODEL_CALL_KINDS = ("llm", "embedding")

# Dimension -> spans column. Rollup dimensions have few values; the others only group as a top-N.
DIMENSIONS: dict[str, str] = {
    "provider": "provider",
    "model": "model_id",  # the canonical model (core.canonical_models)
    "service": "service_name",
    "environment": "environment",
    "status": "status",
    "kind": "kind",
    "finish_reason": "finish_reason",
    "cost_source": "cost_source",
    "user_id": "user_id",
    "session_id": "session_id",
    "tag": "tags",
}
HIGH_CARDINALITY = frozenset({"user_id", "session_id", "tag"})

# What a metric query may name besides metrics and dimensions, and how much of it.
INTERVALS: dict[str, int] = {"minute": 60, "5m": 300, "15m": 900, "hour": 3600, "day": 86_400, "week": 604_800}
MAX_METRICS = 20
MAX_GROUP_BY = 4
MAX_TOP_N = 1000
ALIAS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


def model_call(t: Any) -> ColumnElement[bool]:
    kind: ColumnElement[str] = t.c.kind
    return kind.in_(MODEL_CALL_KINDS)


def failed_model_call(t: Any) -> ColumnElement[bool]:
    return and_(t.c.kind.in_(MODEL_CALL_KINDS), t.c.status == "error")


def unpriced_model_call(t: Any) -> ColumnElement[bool]:
    """A successful model call without a cost (`storage.summaries.unpriced_call`'s twin)."""
    return and_(t.c.kind.in_(MODEL_CALL_KINDS), t.c.cost_source == "none", t.c.status != "error")


def root_span(t: Any) -> ColumnElement[bool]:
    """The span that started its trace: its duration is the trace's latency."""
    parent: ColumnElement[str] = t.c.parent_span_id
    return parent.is_(None)


def _column(name: str) -> Callable[[Any], ColumnElement[Any]]:
    return lambda t: t.c[name]


def tokens_per_second_sql(t: Any) -> ColumnElement[Any]:
    """The SQL twin of `metrics.rollups.tokens_per_second` (same operations, same float results)."""
    valid = and_(t.c.kind == "llm", t.c.status != "error", t.c.output_tokens > 0, t.c.duration_ms > 0)
    return case((valid, cast(t.c.output_tokens, Double) * 1000.0 / t.c.duration_ms))


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    description: str
    unit: str
    kind: MetricKind
    aggregations: tuple[str, ...]
    default_aggregation: str
    # count: spans where `condition`; ratio: `condition` over `denominator`; measure: values of
    # `value` (spans column or expression) where `condition`; distinct: distinct `column` values.
    condition: Callable[[Any], ColumnElement[bool]] | None = None
    denominator: Callable[[Any], ColumnElement[bool]] | None = None
    measure: str | None = None  # the rollup measure (metrics.rollup_tables.MEASURES)
    value: Callable[[Any], ColumnElement[Any]] | None = None
    column: str | None = None
    integer: bool = False
    # Dimensions `condition` reads besides kind and status: a rollup without them cannot answer.
    condition_dimensions: tuple[str, ...] = ()
    # Spans of every kind contribute (`condition` then selects among them, or None: all spans).
    all_spans: bool = False

    @property
    def model_calls_only(self) -> bool:
        """Whether only model calls contribute (every metric but the distinct counts and `all_spans`)."""
        return self.kind != "distinct" and not self.all_spans

    def rollup_answers(self, aggregation: str) -> bool:
        """Whether the rollups hold what this aggregation needs."""
        from observatory_api.metrics.rollup_tables import HISTOGRAMS

        if self.kind in ("count", "ratio"):
            return True
        if self.kind == "distinct" or (self.kind == "measure" and self.measure is None):
            return False
        return aggregation in ADDITIVE or self.measure in HISTOGRAMS


_ALL = (*ADDITIVE, *PERCENTILES)
_TOKENS = ("sum", "avg", "min", "max", *PERCENTILES)


def _tokens(name: str, description: str) -> Metric:
    return Metric(
        id=name,
        description=description,
        unit="tokens",
        kind="measure",
        aggregations=_TOKENS,
        default_aggregation="sum",
        condition=model_call,
        measure=name,
        value=_column(name),
        integer=True,
    )


METRICS: dict[str, Metric] = {
    metric.id: metric
    for metric in (
        Metric(
            id="request_count",
            description="Model calls (LLM and embedding spans).",
            unit="requests",
            kind="count",
            aggregations=("count",),
            default_aggregation="count",
            condition=model_call,
        ),
        Metric(
            id="span_count",
            description="Spans of every kind (group by `kind` for a count of each kind).",
            unit="spans",
            kind="count",
            aggregations=("count",),
            default_aggregation="count",
            all_spans=True,
        ),
        Metric(
            id="trace_latency_ms",
            description="Duration of traces: of their root span (the span without a parent), of any "
            "kind; a trace counts in the bucket where it started. Raw spans only.",
            unit="ms",
            kind="measure",
            aggregations=_ALL,
            default_aggregation="p95",
            condition=root_span,
            value=_column("duration_ms"),
            all_spans=True,
        ),
        Metric(
            id="trace_count",
            description="Distinct traces with at least one matching span (of any kind) in the bucket; "
            "totals count each trace once.",
            unit="traces",
            kind="distinct",
            aggregations=("count",),
            default_aggregation="count",
            column="trace_id",
        ),
        Metric(
            id="error_count",
            description="Model calls with status `error`.",
            unit="requests",
            kind="count",
            aggregations=("count",),
            default_aggregation="count",
            condition=failed_model_call,
        ),
        Metric(
            id="error_rate",
            description="Share of model calls with status `error` (0 to 1); `avg` is the only aggregation.",
            unit="ratio",
            kind="ratio",
            aggregations=("avg",),
            default_aggregation="avg",
            condition=failed_model_call,
            denominator=model_call,
        ),
        Metric(
            id="latency_ms",
            description="Duration of model calls.",
            unit="ms",
            kind="measure",
            aggregations=_ALL,
            default_aggregation="p95",
            condition=model_call,
            measure="duration_ms",
            value=_column("duration_ms"),
        ),
        Metric(
            id="time_to_first_token_ms",
            description="Time to the first streamed token, of model calls that report it.",
            unit="ms",
            kind="measure",
            aggregations=_ALL,
            default_aggregation="p95",
            condition=model_call,
            measure="time_to_first_token_ms",
            value=_column("time_to_first_token_ms"),
        ),
        _tokens("input_tokens", "Prompt tokens of model calls, cached tokens included."),
        _tokens("output_tokens", "Generated tokens of model calls, reasoning tokens included."),
        _tokens("total_tokens", "Input plus output tokens of model calls."),
        _tokens("cache_read_input_tokens", "Input tokens read from the provider's prompt cache."),
        _tokens("cache_creation_input_tokens", "Input tokens written to the provider's prompt cache."),
        _tokens("reasoning_output_tokens", "Hidden reasoning tokens (part of output_tokens)."),
        Metric(
            id="cost_usd",
            description="Cost of model calls in USD (cache and reasoning tokens at their own prices).",
            unit="USD",
            kind="measure",
            aggregations=_TOKENS,
            default_aggregation="sum",
            condition=model_call,
            measure="cost_usd",
            value=_column("cost_usd"),
        ),
        Metric(
            id="unpriced_calls",
            description="Successful model calls without a cost: no price known for the model, or no "
            "usage reported. `cost_usd` leaves them out; they are not free.",
            unit="requests",
            kind="count",
            aggregations=("count",),
            default_aggregation="count",
            condition=unpriced_model_call,
            condition_dimensions=("cost_source",),
        ),
        Metric(
            id="output_tokens_per_second",
            description="Output tokens per second of successful LLM calls (output tokens / duration).",
            unit="tokens/s",
            kind="measure",
            aggregations=("avg", "min", "max", *PERCENTILES),
            default_aggregation="avg",
            condition=model_call,
            measure="output_tokens_per_second",
            value=tokens_per_second_sql,
        ),
        Metric(
            id="unique_users",
            description="Distinct user ids among matching spans (of any kind).",
            unit="users",
            kind="distinct",
            aggregations=("count",),
            default_aggregation="count",
            column="user_id",
        ),
        Metric(
            id="unique_sessions",
            description="Distinct session ids among matching spans (of any kind).",
            unit="sessions",
            kind="distinct",
            aggregations=("count",),
            default_aggregation="count",
            column="session_id",
        ),
    )
}
