"""Metric catalogue, query body and result shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Value = float | int | None
Source = Literal["auto", "raw", "rollup"]


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

    id: str
    aggregation: str | None = None
    alias: str | None = None


class MetricQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /metrics/query`.

    `filter` is the boolean filter language of `POST /traces/search`, over span fields.
    `interval`: minute, 5m, 15m, hour, day, week or auto (about 50 buckets); none: totals only.
    `order_by`: a value key, `-` first for descending; with `limit` it keeps the top-N series
    (required when grouping by user_id, session_id or tag; at most 1000). `source` forces raw
    spans or the rollups (default `auto`).
    """

    metrics: list[MetricSelection]
    group_by: list[str] = msgspec.field(default_factory=list)
    filter: dict[str, Any] | None = None
    from_: datetime | None = msgspec.field(default=None, name="from")
    to: datetime | None = None
    interval: str | None = None
    order_by: str | None = None
    limit: int | None = None
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
