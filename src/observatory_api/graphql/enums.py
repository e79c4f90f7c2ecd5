"""GraphQL enums for the kinds, statuses, intervals, sorts and aggregations the REST API takes as
strings, each derived from the list REST checks against, so that the two cannot drift."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, cast, get_args

import strawberry

from observatory_api.core.vocabulary import LOG_SEVERITIES, SPAN_KINDS, SPAN_STATUSES
from observatory_api.metrics.catalogue import AGGREGATIONS, INTERVALS
from observatory_api.metrics.schemas import Source
from observatory_api.models.schemas import UsageInterval
from observatory_api.sessions.repository import SessionSort as SessionSortValue
from observatory_api.spans.repository import SpanSort as SpanSortValue
from observatory_api.traces.schemas import TraceSort as TraceSortValue

# Member names where the upper-cased value is not a GraphQL name.
_INTERVAL_NAMES = {"5m": "FIVE_MINUTES", "15m": "FIFTEEN_MINUTES"}


def _enum(name: str, values: Iterable[str], description: str) -> type[Enum]:
    """A GraphQL enum over `values`, a member per value named by the upper-cased value."""
    members = [(_INTERVAL_NAMES.get(value, value.upper()), value) for value in values]
    return strawberry.enum(cast("type[Enum]", Enum(name, members)), description=description)


def _sort_enum(name: str, values: Iterable[str], description: str) -> type[Enum]:
    """A GraphQL enum over sort values: `x` is the member `X_ASC`, `-x` is `X_DESC`."""
    members = [(f"{value.lstrip('-').upper()}_{'DESC' if value.startswith('-') else 'ASC'}", value) for value in values]
    return strawberry.enum(cast("type[Enum]", Enum(name, members)), description=description)


# The type checker sees plain enums: the members come from the lists above at run time.
if TYPE_CHECKING:
    SpanStatus = Enum
    SpanKind = Enum
    Severity = Enum
    Interval = Enum
    MetricInterval = Enum
    Aggregation = Enum
    MetricSource = Enum
    TraceSort = Enum
    SpanSort = Enum
    SessionSort = Enum
else:
    SpanStatus = _enum("SpanStatus", SPAN_STATUSES, "Span status.")
    SpanKind = _enum("SpanKind", SPAN_KINDS, "What a span does; `LLM` for LLM calls.")
    Severity = _enum("Severity", LOG_SEVERITIES, "Log severity.")
    Interval = _enum("Interval", get_args(UsageInterval), "Time bucket of a series.")
    MetricInterval = _enum(
        "MetricInterval", [*INTERVALS, "auto"], "Time bucket of a metric query; `AUTO` picks about 50 buckets."
    )
    Aggregation = _enum("Aggregation", AGGREGATIONS, "How a metric's values are combined.")
    MetricSource = _enum("MetricSource", get_args(Source), "Where a metric query reads from.")
    TraceSort = _sort_enum("TraceSort", get_args(TraceSortValue), "Trace order.")
    SpanSort = _sort_enum("SpanSort", get_args(SpanSortValue), "Span order.")
    SessionSort = _sort_enum("SessionSort", get_args(SessionSortValue), "Session order.")

# The defaults of the arguments, REST's defaults.
NEWEST_TRACES_FIRST = TraceSort("-start_time")
NEWEST_SPANS_FIRST = SpanSort("-start_time")
LATEST_SESSIONS_FIRST = SessionSort("-last_seen")
ANY_SOURCE = MetricSource("auto")
