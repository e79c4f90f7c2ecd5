"""Independent expectations for metric queries, computed in Python over the generator's records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from observatory_api.core.records import SpanRecord
from tests import dataset

MODEL_CALLS = ("llm", "embedding")
PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def in_window(start: datetime, end: datetime, spans: Iterable[SpanRecord] | None = None) -> list[SpanRecord]:
    return [s for s in (dataset.spans() if spans is None else spans) if start <= s.start_time < end]


def tokens_per_second(s: SpanRecord) -> float | None:
    if s.kind != "llm" or s.status == "error" or not s.output_tokens or s.duration_ms <= 0:
        return None
    return s.output_tokens * 1000.0 / s.duration_ms


_VALUES: dict[str, Callable[[SpanRecord], Any]] = {
    "latency_ms": lambda s: s.duration_ms,
    "time_to_first_token_ms": lambda s: s.time_to_first_token_ms,
    "input_tokens": lambda s: s.input_tokens,
    "output_tokens": lambda s: s.output_tokens,
    "total_tokens": lambda s: s.total_tokens,
    "cache_read_input_tokens": lambda s: s.cache_read_input_tokens,
    "cache_creation_input_tokens": lambda s: s.cache_creation_input_tokens,
    "reasoning_output_tokens": lambda s: s.reasoning_output_tokens,
    "cost_usd": lambda s: s.cost_usd,
    "output_tokens_per_second": tokens_per_second,
}
_DISTINCT = {"trace_count": "trace_id", "unique_users": "user_id", "unique_sessions": "session_id"}


def value(metric: str, aggregation: str, spans: list[SpanRecord]) -> Any:
    """The value of `metric` `aggregation` over `spans` (already filtered by window and filter)."""
    calls = [s for s in spans if s.kind in MODEL_CALLS]
    if metric in _DISTINCT:
        return len({getattr(s, _DISTINCT[metric]) for s in spans if getattr(s, _DISTINCT[metric]) is not None})
    if metric == "request_count":
        return len(calls)
    if metric == "error_count":
        return sum(s.status == "error" for s in calls)
    if metric == "error_rate":
        return sum(s.status == "error" for s in calls) / len(calls) if calls else None
    if metric == "unpriced_calls":
        return sum(s.cost_source == "none" and s.status != "error" for s in calls)
    if metric == "span_count":
        return len(spans)
    if metric == "trace_latency_ms":  # the root spans' durations, of any kind
        values = [s.duration_ms for s in spans if s.parent_span_id is None]
    else:
        values = [v for v in (_VALUES[metric](s) for s in calls) if v is not None]
    if aggregation == "count":
        return len(values)
    if aggregation == "sum":
        return sum(values)
    if aggregation == "avg":
        return sum(values) / len(values) if values else None
    if aggregation == "min":
        return min(values, default=None)
    if aggregation == "max":
        return max(values, default=None)
    return percentile(values, PERCENTILES[aggregation])


def close(actual: Any, wanted: Any, *, relative: float = 1e-9) -> bool:
    if wanted is None or actual is None:
        return actual is wanted
    return abs(actual - wanted) <= relative * max(abs(wanted), 1e-12) + 1e-12
