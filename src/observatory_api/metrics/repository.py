"""MetricRepository: runs a planned metric query on raw spans or the rollups and assembles the answer.

States (counts, sums, min, max, histogram bins) are read at the finest level asked for (group and
bucket), and merged in Python up to each series' totals and the overall totals whenever that is
exact; distinct counts, exact percentiles, top-N queries and tag groups (a span counts under each
of its tags) read each level from the database instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.core.errors import InvalidInput
from observatory_api.core.query import TimeWindow
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.metric_sql import grouped_percentiles
from observatory_api.metrics import histogram
from observatory_api.metrics.catalogue import Metric
from observatory_api.metrics.plan import MAX_POINTS, Plan, Selection, segments, usable_grains
from observatory_api.metrics.rollup_tables import HISTOGRAMS
from observatory_api.metrics.schemas import MetricPoint, MetricQueryResult, MetricSeries
from observatory_api.metrics.segment_cache import PIECE_SECONDS, SegmentCache, pieces, split_by_bucket
from observatory_api.metrics.sql import (
    edge_values,
    memoized,
    raw_source,
    rollup_source,
    states_statement,
    top_groups_statement,
    value_group,
    window_params,
)
from observatory_api.metrics.states import (
    GroupKey,
    Level,
    Percentiles,
    decoder,
    exact_at,
    merge_levels,
    merge_up,
    values_of,
)
from observatory_api.observability.db import timed


class MetricRepository:
    """`segments`, when given, keeps the states of closed rollup segments between queries
    (`metrics.segment_cache`); every writer must invalidate it (segment_sync.py). `holds_until`
    says up to when `engine` holds every commit (a replica: the read router's last check; the
    primary, by default: always)."""

    def __init__(
        self,
        engine: AsyncEngine,
        capabilities: DatabaseCapabilities,
        *,
        segments: SegmentCache | None = None,
        holds_until: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self._engine = engine
        self._capabilities = capabilities
        self._segments = segments
        self._holds_until = holds_until

    @timed("metrics.query")
    async def query(self, plan: Plan) -> MetricQueryResult:
        async with self._engine.connect() as conn:
            return await _Execution(conn, plan, self._capabilities, self._segments, self._holds_until).run()


class _Execution:
    def __init__(
        self,
        conn: AsyncConnection,
        plan: Plan,
        capabilities: DatabaseCapabilities,
        segments: SegmentCache | None = None,
        holds_until: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self.conn = conn
        self.plan = plan
        self.capabilities = capabilities
        self.segments = segments
        self.holds_until = holds_until
        self.nkeys = len(plan.group_by)
        self.bucketed = plan.interval_seconds is not None
        self.groups: list[GroupKey] | None = None
        # Everything that shapes this query's statements but the window (bound at execution).
        self.shape: tuple[Any, ...] = (
            capabilities,  # the dialect, time_bucket or date_bin, aggregates or rollup tables
            tuple((s.metric.id, s.aggregation) for s in plan.selections),
            tuple(plan.group_by),
            repr(plan.filter_node),
            plan.allow_content,
            plan.interval_seconds,
        )

    async def run(self) -> MetricQueryResult:
        plan = self.plan
        if plan.top_n_in_sql:
            key = ("top", self.shape, plan.order_key, plan.descending, plan.limit)
            statement = memoized(key, lambda: top_groups_statement(plan, raw_source(plan, self.capabilities)))
            self.groups = [tuple(row) for row in await self._execute(statement, plan.window)]
        finest = await self._finest_states()
        distinct = any(s.metric.kind == "distinct" for s in plan.selections)
        if self.bucketed:
            points = finest
            if distinct:
                series = await self._raw_states(with_bucket=False)
            else:
                series = merge_up(points, self.nkeys)
        else:
            points, series = {}, finest
        if distinct or "tag" in plan.group_by or self.groups is not None:
            totals = await self._raw_states(with_bucket=False, with_keys=False)
        else:
            totals = merge_up(series, 0)
        exact: Percentiles = {}
        if plan.grain is None and any(s.percentile is not None for s in plan.selections):
            exact = await self._exact_percentiles()
        return self._assemble(points, series, totals, exact)

    async def _execute(self, statement: Any, *windows: TimeWindow) -> Any:
        return await self.conn.execute(statement, window_params(*windows))

    def _groups_key(self, with_keys: bool) -> tuple[GroupKey, ...] | None:
        return tuple(self.groups) if with_keys and self.groups is not None else None

    # ------------------------------------------------------------------ reading states

    async def _finest_states(self) -> Level:
        plan = self.plan
        if plan.grain is None:
            return await self._raw_states(with_bucket=self.bucketed)
        level: Level = {}
        edges: list[TimeWindow] = []
        for grain, part in segments(plan.window, usable_grains(plan.interval_seconds)):
            if grain is None:
                edges.append(part)
            else:
                level = merge_levels(level, await self._rollup_states(grain, part))
        # Edges read together save a round trip (a bucket key keeps them apart; unbucketed they
        # merge anyway). SQLite has no round trip to save, and scans `spans` for an OR of ranges.
        for together in (
            [[edge] for edge in edges] if self.capabilities.dialect_name == "sqlite" else [edges] if edges else []
        ):
            edge_level = await self._raw_states(with_bucket=self.bucketed, windows=together)
            await self._edge_histograms(together, edge_level)
            level = merge_levels(level, edge_level)
        return level

    async def _rollup_states(self, grain: str, part: TimeWindow) -> Level:
        """The states of the whole `grain` buckets of `part`: kept when the segment is closed."""
        plan, bucketed = self.plan, self.bucketed
        key = ("rollup", self.shape, grain, bucketed)
        statement = memoized(
            key, lambda: states_statement(plan, rollup_source(plan, grain, self.capabilities), with_bucket=bucketed)
        )
        cache = self.segments
        nkeys = self.nkeys + bucketed
        if cache is None or part.end > datetime.now(UTC):  # open: always read
            return await self._read(statement, [part], nkeys)
        # By bucket, kept in pieces (when buckets never straddle them): a late span drops its own.
        seconds = PIECE_SECONDS.get(grain)
        interval = plan.interval_seconds
        split = seconds is not None and interval is not None and seconds % interval == 0
        parts = pieces(part, seconds) if split and seconds is not None else [part]
        level: Level = {}
        missing: list[TimeWindow] = []
        for piece in parts:
            found: Level | None = cache.get((key, piece.start, piece.end))
            if found is None:
                missing.append(piece)
            else:
                level.update(found)
        for run in _consecutive(missing):  # each run of missing pieces in one statement
            generation, holds_until = cache.generation, self.holds_until()
            read = await self._read(statement, [TimeWindow(start=run[0].start, end=run[-1].end)], nkeys)
            for piece, states in zip(run, split_by_bucket(read, run) if len(run) > 1 else [read], strict=True):
                cache.put(
                    (key, piece.start, piece.end),
                    start=piece.start,
                    end=piece.end,
                    states=states,
                    generation=generation,
                    holds_until=holds_until,
                )
            level.update(read)
        return level

    async def _raw_states(
        self, *, with_bucket: bool, with_keys: bool = True, windows: list[TimeWindow] | None = None
    ) -> Level:
        windows = windows or [self.plan.window]
        key = ("raw", self.shape, with_bucket, with_keys, self._groups_key(with_keys), len(windows))

        def build() -> Any:
            plan = self.plan if with_keys else replace(self.plan, group_by=[])
            source = raw_source(
                plan, self.capabilities, groups=self.groups if with_keys else None, windows=len(windows)
            )
            return states_statement(plan, source, with_bucket=with_bucket, with_keys=with_keys)

        statement = memoized(key, build)
        return await self._read(statement, windows, (self.nkeys if with_keys else 0) + with_bucket)

    async def _edge_histograms(self, edges: list[TimeWindow], level: Level) -> None:
        """Fill the histogram states of the raw edges from their values, as the writer would."""
        plan, bucketed = self.plan, self.bucketed
        for selection in _histogram_selections(plan):
            key = ("edge", self.shape, selection.metric.id, bucketed, self._groups_key(True), len(edges))

            def build(selection: Selection = selection) -> Any:
                source = raw_source(plan, self.capabilities, groups=self.groups, windows=len(edges))
                return edge_values(plan, source, selection, with_bucket=bucketed)

            values: dict[GroupKey, list[float]] = defaultdict(list)
            for row in await self._execute(memoized(key, build), *edges):
                values[tuple(row[:-1])].append(float(row[-1]))
            for group, found in values.items():
                level.setdefault(group, {})[f"{selection.metric.id}:h"] = histogram.histogram_of(found)

    async def _read(self, statement: Any, windows: list[TimeWindow], nkeys: int) -> Level:
        result = await self._execute(statement, *windows)
        decode = decoder(tuple(result.keys())[nkeys:])
        return {tuple(row[:nkeys]): decode(row[nkeys:]) for row in result}

    async def _exact_percentiles(self) -> Percentiles:
        plan = self.plan
        # Without groups the series and the totals are the same level: read it once.
        levels: dict[str, tuple[bool, bool]] = {"totals": (False, False)}
        if self.nkeys:
            levels["series"] = (False, True)
        if self.bucketed:
            levels["points"] = (True, True)
        found: Percentiles = {}
        by_metric: dict[str, list[float]] = defaultdict(list)
        metrics = {}
        for selection in plan.selections:
            if selection.percentile is not None:
                by_metric[selection.metric.id].append(selection.percentile)
                metrics[selection.metric.id] = selection.metric
        for level_name, (with_bucket, with_keys) in levels.items():
            level = found.setdefault(level_name, {})
            for metric_id, fractions in by_metric.items():
                key = ("exact", self.shape, with_bucket, with_keys, self._groups_key(with_keys), metric_id)

                def build(
                    metric: Metric = metrics[metric_id],
                    fractions: list[float] = fractions,
                    with_bucket: bool = with_bucket,
                    with_keys: bool = with_keys,
                ) -> Any:
                    sub_plan = plan if with_keys else replace(plan, group_by=[])
                    source = raw_source(sub_plan, self.capabilities, groups=self.groups if with_keys else None)
                    keys = value_group(plan, source, with_bucket=with_bucket)
                    # Percentiles are of measures: a condition and a value.
                    assert metric.condition is not None
                    assert metric.value is not None
                    value = case((metric.condition(source.table), metric.value(source.table)))
                    return grouped_percentiles(
                        self.capabilities.dialect_name,
                        keys=keys,
                        value=value,
                        from_obj=source.from_obj,
                        where=source.where,
                        fractions=fractions,
                    )

                nkeys = (self.nkeys if with_keys else 0) + with_bucket
                for row in await self._execute(memoized(key, build), plan.window):
                    group = tuple(row[:nkeys])
                    results = row[nkeys:]
                    level.setdefault(group, {})[metric_id] = {
                        f: None if v is None else float(v) for f, v in zip(fractions, results, strict=True)
                    }
        return found

    # ------------------------------------------------------------------ the answer

    def _assemble(self, points: Level, series: Level, totals: Level, exact: Percentiles) -> MetricQueryResult:
        plan = self.plan
        if not self.nkeys and "totals" in exact:
            exact["series"] = exact["totals"]
        keys = sorted(series, key=_group_order) if self.nkeys else [()]
        all_series = []
        for key in keys:
            entry = MetricSeries(
                group={name: key[i] for i, name in enumerate(plan.group_by)},
                totals=values_of(plan.selections, series.get(key, {}), exact_at(exact, "series", key)),
            )
            if self.bucketed:
                entry.points = [
                    MetricPoint(
                        time=start,
                        values=values_of(
                            plan.selections, points.get((*key, start), {}), exact_at(exact, "points", (*key, start))
                        ),
                    )
                    for start in plan.buckets
                ]
            all_series.append(entry)
        if plan.order_key is not None:
            all_series = _ordered(all_series, plan.order_key, plan.descending)
        if plan.limit is not None:
            all_series = all_series[: plan.limit]
        if len(all_series) * max(len(plan.buckets), 1) > MAX_POINTS:
            raise InvalidInput.field(
                "group_by",
                f"the answer would hold more than {MAX_POINTS} points; add a limit or a coarser interval",
                "body",
            )
        source = "raw" if plan.grain is None else f"rollup_{plan.grain}"
        return MetricQueryResult(
            from_=plan.window.start,
            to=plan.window.end,
            interval=plan.interval,
            source=source,
            series=all_series,
            totals=values_of(plan.selections, totals.get((), {}), exact_at(exact, "totals", ())),
        )


def _consecutive(parts: list[TimeWindow]) -> list[list[TimeWindow]]:
    runs: list[list[TimeWindow]] = []
    for part in parts:
        if runs and runs[-1][-1].end == part.start:
            runs[-1].append(part)
        else:
            runs.append([part])
    return runs


def _histogram_selections(plan: Plan) -> list[Selection]:
    chosen: dict[str, Selection] = {}
    for selection in plan.selections:
        if selection.percentile is not None and selection.metric.measure in HISTOGRAMS:
            chosen.setdefault(selection.metric.id, selection)
    return list(chosen.values())


def _group_order(key: GroupKey) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, "" if value is None else str(value)) for value in key)


def _ordered(series: list[MetricSeries], key: str, descending: bool) -> list[MetricSeries]:
    present = [(value, s) for s in series if (value := s.totals.get(key)) is not None]
    missing = [s for s in series if s.totals.get(key) is None]
    present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep group order
    return [s for _, s in present] + missing
