"""The rollup tables: spans pre-aggregated per minute, hour and day (migration 0003 creates them).

One row per bucket and combination of the low-cardinality dimensions. `dims_key` is a hash of
those dimension values (NULL included), so the upsert key needs no NULL-aware unique index; the
dimension columns keep their real values (NULL stays NULL) so span filters apply unchanged.
Every measure has a count of non-null values, a sum, a min and a max; latency and time to first
token also have a log-spaced histogram (see `metrics.histogram`) in fixed columns, NULL for 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Double, PrimaryKeyConstraint, String, Table

from observatory_api.core.records import TOKEN_COUNTS
from observatory_api.db.tables import metadata
from observatory_api.db.types import UTCDateTime
from observatory_api.metrics.catalogue import DIMENSIONS, HIGH_CARDINALITY
from observatory_api.metrics.histogram import BINS

# Dimension name in the API -> column of spans (and of the rollups): the catalogue's dimensions
# but the high-cardinality ones, which group only as a top-N over raw spans.
ROLLUP_DIMENSIONS: dict[str, str] = {
    name: column for name, column in DIMENSIONS.items() if name not in HIGH_CARDINALITY
}
# Measure -> whether its values are integers (token counts).
MEASURES: dict[str, bool] = {
    "duration_ms": False,
    "time_to_first_token_ms": False,
    **dict.fromkeys(TOKEN_COUNTS, True),
    "cost_usd": False,
    "output_tokens_per_second": False,
}
# Measure -> prefix of its histogram columns.
HISTOGRAMS: dict[str, str] = {"duration_ms": "duration", "time_to_first_token_ms": "ttft"}
# Finest first. A day bucket holds 24 hour buckets, an hour 60 minutes: a range is read from the
# coarsest rollup that fits, its edges from finer ones, and what is left (under a minute) raw.
GRAINS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}


def hist_columns(measure: str) -> list[str]:
    prefix = HISTOGRAMS[measure]
    return [f"{prefix}_h{i:03d}" for i in range(BINS)]


@dataclass(frozen=True, slots=True)
class Rollup:
    """One rollup table: its grain and the dimensions (API names) it keeps."""

    table: Table
    grain: str
    dimensions: tuple[str, ...]

    @property
    def seconds(self) -> int:
        return GRAINS[self.grain]

    @property
    def dimension_columns(self) -> tuple[str, ...]:
        return tuple(ROLLUP_DIMENSIONS[name] for name in self.dimensions)


_NULLABLE = {"provider", "model_id", "environment", "finish_reason", "cost_source"}
_LENGTHS = {
    "provider": 100,
    "model_id": 300,
    "service_name": 200,
    "environment": 100,
    "status": 8,
    "kind": 16,
    "cost_source": 16,
}


def _rollup_table(name: str, dimension_columns: tuple[str, ...]) -> Table:
    columns: list[Column[Any]] = [
        Column("bucket", UTCDateTime, nullable=False),
        Column("dims_key", String(32), nullable=False),
        *(
            Column(column, String(_LENGTHS.get(column, 64)), nullable=column in _NULLABLE)
            for column in dimension_columns
        ),
        Column("span_count", BigInteger, nullable=False),
    ]
    for measure, integer in MEASURES.items():
        value_type = BigInteger if integer else Double
        columns += [
            Column(f"{measure}_count", BigInteger, nullable=False),
            Column(f"{measure}_sum", value_type, nullable=False),
            Column(f"{measure}_min", value_type),
            Column(f"{measure}_max", value_type),
        ]
    for measure in HISTOGRAMS:
        columns += [Column(name_, BigInteger) for name_ in hist_columns(measure)]
    return Table(name, metadata, *columns, PrimaryKeyConstraint("bucket", "dims_key"))


_ALL = tuple(ROLLUP_DIMENSIONS)
_ALL_COLUMNS = tuple(ROLLUP_DIMENSIONS.values())
metric_rollup_minute = _rollup_table("metric_rollup_minute", _ALL_COLUMNS)
metric_rollup_hour = _rollup_table("metric_rollup_hour", _ALL_COLUMNS)
metric_rollup_day = _rollup_table("metric_rollup_day", _ALL_COLUMNS)
# Per minute, hour and day with only kind and status (what every metric's condition reads): a
# few rows a bucket, for queries that neither group nor filter by another dimension (migration
# 0014 added the hour and day ones: bench/metric_engine.py's 7 days of model calls are 484 rows
# of the hour one against 8,722 of `metric_rollup_hour`).
_OVERALL = ("status", "kind")
metric_rollup_minute_overall = _rollup_table("metric_rollup_minute_overall", _OVERALL)
metric_rollup_hour_overall = _rollup_table("metric_rollup_hour_overall", _OVERALL)
metric_rollup_day_overall = _rollup_table("metric_rollup_day_overall", _OVERALL)
ROLLUPS: tuple[Rollup, ...] = (
    Rollup(metric_rollup_minute, "minute", _ALL),
    Rollup(metric_rollup_minute_overall, "minute", _OVERALL),
    Rollup(metric_rollup_hour, "hour", _ALL),
    Rollup(metric_rollup_day, "day", _ALL),
    Rollup(metric_rollup_hour_overall, "hour", _OVERALL),
    Rollup(metric_rollup_day_overall, "day", _OVERALL),
)
# The rollup of each grain that keeps every dimension.
ROLLUP_TABLES: dict[str, Table] = {
    "minute": metric_rollup_minute,
    "hour": metric_rollup_hour,
    "day": metric_rollup_day,
}
