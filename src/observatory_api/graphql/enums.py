"""GraphQL enums for the kinds, statuses, intervals, sorts and aggregations the REST API takes as strings."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Span status.")
class SpanStatus(Enum):
    OK = "ok"
    ERROR = "error"
    UNSET = "unset"


@strawberry.enum(description="What a span does; `LLM` for LLM calls.")
class SpanKind(Enum):
    LLM = "llm"
    EMBEDDING = "embedding"
    CHAIN = "chain"
    AGENT = "agent"
    TOOL = "tool"
    RETRIEVER = "retriever"
    OTHER = "other"


@strawberry.enum(description="Log severity.")
class Severity(Enum):
    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


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
