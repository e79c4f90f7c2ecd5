"""GraphQL enums for the kinds, statuses, intervals, sorts and aggregations the REST API takes as strings."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, cast

import strawberry

from observatory_api.core.vocabulary import LOG_SEVERITIES, SPAN_KINDS, SPAN_STATUSES


def _vocabulary_enum(name: str, values: tuple[str, ...], description: str) -> type[Enum]:
    """A GraphQL enum over `values` (core.vocabulary), each member named by its upper-cased value."""
    python_enum = cast("type[Enum]", Enum(name, [(value.upper(), value) for value in values]))
    return strawberry.enum(python_enum, description=description)


# The members come from core.vocabulary; the type checker sees plain enums.
if TYPE_CHECKING:
    SpanStatus = Enum
    SpanKind = Enum
    Severity = Enum
else:
    SpanStatus = _vocabulary_enum("SpanStatus", SPAN_STATUSES, "Span status.")
    SpanKind = _vocabulary_enum("SpanKind", SPAN_KINDS, "What a span does; `LLM` for LLM calls.")
    Severity = _vocabulary_enum("Severity", LOG_SEVERITIES, "Log severity.")


@strawberry.enum(description="Time bucket of a series.")
class Interval(Enum):
    MINUTE = "minute"
    FIVE_MINUTES = "5m"
    FIFTEEN_MINUTES = "15m"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


@strawberry.enum(description="Time bucket of a metric query; `AUTO` picks about 50 buckets.")
class MetricInterval(Enum):
    MINUTE = "minute"
    FIVE_MINUTES = "5m"
    FIFTEEN_MINUTES = "15m"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    AUTO = "auto"


@strawberry.enum(description="How a metric's values are combined.")
class Aggregation(Enum):
    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    P50 = "p50"
    P75 = "p75"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"


@strawberry.enum(description="Where a metric query reads from.")
class MetricSource(Enum):
    AUTO = "auto"
    RAW = "raw"
    ROLLUP = "rollup"


@strawberry.enum(description="Trace order.")
class TraceSort(Enum):
    START_TIME_ASC = "start_time"
    START_TIME_DESC = "-start_time"
    DURATION_ASC = "duration"
    DURATION_DESC = "-duration"
    COST_ASC = "cost"
    COST_DESC = "-cost"


@strawberry.enum(description="Span order.")
class SpanSort(Enum):
    START_TIME_ASC = "start_time"
    START_TIME_DESC = "-start_time"
    DURATION_ASC = "duration"
    DURATION_DESC = "-duration"


@strawberry.enum(description="Session order.")
class SessionSort(Enum):
    LAST_SEEN_ASC = "last_seen"
    LAST_SEEN_DESC = "-last_seen"
