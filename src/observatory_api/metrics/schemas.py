"""Metric catalogue, query body and result shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from observatory_api.metrics.catalogue import (
    AGGREGATIONS,
    ALIAS_PATTERN,
    DIMENSIONS,
    INTERVALS,
    MAX_GROUP_BY,
    MAX_METRICS,
    MAX_TOP_N,
    METRICS,
)
from observatory_api.openapi_docs import documented, nullable_filter

# Counts are sent as integers, the rest as floats: one JSON `number` (an int is a float to type
# checkers too). `float | int` was documented as oneOf number/integer, which no integer matches.
Value = float | None
Source = Literal["auto", "raw", "rollup"]


# The query planner (`metrics.plan`) checks these with its own reasons, naming the field.
MetricId = Annotated[str, documented(enum=list(METRICS))]
# `null` stands for the default, as an absent key does.
AggregationName = Annotated[str, documented(enum=[*AGGREGATIONS, None])]


class MetricDefinition(msgspec.Struct, kw_only=True):
    id: str
    description: str
    unit: str
    aggregations: list[str]
    default_aggregation: str
    dimensions: list[str]
    # Aggregations the rollups answer; the others always read raw spans.
    rollup_aggregations: list[str]


class MetricCatalogue(msgspec.Struct, kw_only=True):
    data: list[MetricDefinition]
    intervals: list[str]
    top_n_dimensions: list[str]


class MetricSelection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One value to compute: `id` from the catalogue, `aggregation` (default: the metric's
    default), `alias` (the key of the value; default `<id>_<aggregation>`)."""

    id: MetricId
    aggregation: AggregationName | None = None
    alias: Annotated[str, documented(pattern=ALIAS_PATTERN)] | None = None


class MetricQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /metrics/query`.

    `filter` is the boolean filter language of `POST /traces/search`, over span fields.
    `interval`: minute, 5m, 15m, hour, day, week or auto (about 50 buckets); none: totals only.
    `order_by`: a value key, `-` first for descending; with `limit` it keeps the top-N series
    (required when grouping by user_id, session_id or tag; at most 1000). `source` forces raw
    spans or the rollups (default `auto`).
    """

    metrics: Annotated[list[MetricSelection], documented(min_items=1, max_items=MAX_METRICS)]
    group_by: Annotated[
        list[str],
        documented(items={"type": "string", "enum": list(DIMENSIONS)}, max_items=MAX_GROUP_BY, unique_items=True),
    ] = msgspec.field(default_factory=list)
    filter: Annotated[dict[str, Any], documented(one_of=nullable_filter("spans"))] | None = None
    from_: datetime | None = msgspec.field(default=None, name="from")
    to: datetime | None = None
    interval: Annotated[str, documented(enum=[*INTERVALS, "auto", None])] | None = None
    order_by: str | None = None
    limit: Annotated[int, documented(minimum=1, maximum=MAX_TOP_N)] | None = None
    source: Source = "auto"


class MetricPoint(msgspec.Struct, kw_only=True):
    time: datetime
    values: dict[str, Value]


class MetricSeries(msgspec.Struct, kw_only=True, omit_defaults=True):
    group: dict[str, str | None]
    points: list[MetricPoint] | None = None
    totals: dict[str, Value] = msgspec.field(default_factory=dict)


class MetricQueryResult(msgspec.Struct, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    interval: str | None
    # Where the answer came from: raw, rollup_minute or rollup_hour (edges of the range that
    # do not fill a whole rollup bucket are read from raw spans).
    source: str
    series: list[MetricSeries]
    totals: dict[str, Value]


class PeriodValue(msgspec.Struct, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    value: Value


class Change(msgspec.Struct, kw_only=True):
    absolute: float | None
    # (current - previous) / previous; null when the previous value is 0 or null.
    relative: float | None


class MetricValue(msgspec.Struct, kw_only=True):
    metric: MetricDefinition
    aggregation: str
    from_: datetime = msgspec.field(name="from")
    to: datetime
    value: Value
    previous: PeriodValue
    change: Change
    source: str
