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


def _count(id: str, description: str, condition: Callable[[Any], ColumnElement[bool]] | None, **extra: Any) -> Metric:
    """Model calls (or, with `all_spans=True`, spans) where `condition` holds (None: every one)."""
    return Metric(
        id=id,
        description=description,
        unit=extra.pop("unit", "requests"),
        kind="count",
        aggregations=("count",),
        default_aggregation="count",
        condition=condition,
        **extra,
    )


def _distinct(id: str, description: str, unit: str, column: str) -> Metric:
    return Metric(
        id=id,
        description=description,
        unit=unit,
        kind="distinct",
        aggregations=("count",),
        default_aggregation="count",
        column=column,
    )


def _measure(
    id: str,
    description: str,
    unit: str,
    *,
    measure: str | None = None,
    aggregations: tuple[str, ...] = _ALL,
    default_aggregation: str = "p95",
    **extra: Any,
) -> Metric:
    """A measure of model calls; the rollup measure and the spans column are named `measure`
    (default: the metric id) unless `extra` gives another `value`."""
    measure = measure or id
    return Metric(
        id=id,
        description=description,
        unit=unit,
        kind="measure",
        aggregations=aggregations,
        default_aggregation=default_aggregation,
        condition=extra.pop("condition", model_call),
        measure=measure,
        value=extra.pop("value", _column(measure)),
        **extra,
    )


def _tokens(id: str, description: str) -> Metric:
    return _measure(id, description, "tokens", aggregations=_TOKENS, default_aggregation="sum", integer=True)


METRICS: dict[str, Metric] = {
    metric.id: metric
    for metric in (
        _count("request_count", "Model calls (LLM and embedding spans).", model_call),
        _count(
            "span_count",
            "Spans of every kind (group by `kind` for a count of each kind).",
            None,
            unit="spans",
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
        _distinct(
            "trace_count",
            "Distinct traces with at least one matching span (of any kind) in the bucket; "
            "totals count each trace once.",
            "traces",
            "trace_id",
        ),
        _count("error_count", "Model calls with status `error`.", failed_model_call),
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
        _measure("latency_ms", "Duration of model calls.", "ms", measure="duration_ms"),
        _measure("time_to_first_token_ms", "Time to the first streamed token, of model calls that report it.", "ms"),
        _tokens("input_tokens", "Prompt tokens of model calls, cached tokens included."),
        _tokens("output_tokens", "Generated tokens of model calls, reasoning tokens included."),
        _tokens("total_tokens", "Input plus output tokens of model calls."),
        _tokens("cache_read_input_tokens", "Input tokens read from the provider's prompt cache."),
        _tokens("cache_creation_input_tokens", "Input tokens written to the provider's prompt cache."),
        _tokens("reasoning_output_tokens", "Hidden reasoning tokens (part of output_tokens)."),
        _measure(
            "cost_usd",
            "Cost of model calls in USD (cache and reasoning tokens at their own prices).",
            "USD",
            aggregations=_TOKENS,
            default_aggregation="sum",
        ),
        _count(
            "unpriced_calls",
            "Successful model calls without a cost: no price known for the model, or no "
            "usage reported. `cost_usd` leaves them out; they are not free.",
            unpriced_model_call,
            condition_dimensions=("cost_source",),
        ),
        _measure(
            "output_tokens_per_second",
            "Output tokens per second of successful LLM calls (output tokens / duration).",
            "tokens/s",
            aggregations=("avg", "min", "max", *PERCENTILES),
            default_aggregation="avg",
            value=tokens_per_second_sql,
        ),
        _distinct("unique_users", "Distinct user ids among matching spans (of any kind).", "users", "user_id"),
        _distinct(
            "unique_sessions", "Distinct session ids among matching spans (of any kind).", "sessions", "session_id"
        ),
    )
}
