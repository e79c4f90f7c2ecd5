"""MetricRepository: runs a planned metric query on raw spans or the rollups and assembles the answer.

States (counts, sums, min, max, histogram bins) are read at the finest level asked for (group and
bucket), and merged in Python up to each series' totals and the overall totals whenever that is
exact; distinct counts, exact percentiles, top-N queries and tag groups (a span counts under each
of its tags) read each level from the database instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.core.query import TimeWindow
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.metric_sql import grouped_percentiles
from observatory_api.metrics import histogram
from observatory_api.metrics.aggregate_pending import Pending, pending_ranges, touches
from observatory_api.metrics.answer import assemble
from observatory_api.metrics.catalogue import Metric
from observatory_api.metrics.continuous_aggregates import aggregate_for
from observatory_api.metrics.materialized import Materialized, materialized
from observatory_api.metrics.parts import Finish, Parts, taking
from observatory_api.metrics.plan import Plan, Selection, rollup_for, segments, usable_grains
from observatory_api.metrics.raw_columns import (
    Fractions,
    fractions_of,
    histogram_selections,
    taken_exact,
    with_edge_values,
    with_exact,
)
from observatory_api.metrics.schemas import MetricQueryResult
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
    merge_levels,
    merge_up,
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
        self._sources = _Sources(capabilities, segments, holds_until)

    @timed("metrics.query")
    async def query(self, plan: Plan) -> MetricQueryResult:
        async with self._engine.connect() as conn:
            return await _Execution(conn, plan, self._sources).run()


@dataclass(frozen=True, slots=True)
class _Sources:
    """What the repository hands each query besides its connection (see MetricRepository)."""

    capabilities: DatabaseCapabilities
    segments: SegmentCache | None
    holds_until: Callable[[], float]


class _Execution:
    def __init__(self, conn: AsyncConnection, plan: Plan, sources: _Sources) -> None:
        self.conn = conn
        self.plan = plan
        self.capabilities = sources.capabilities
        self.sources = sources
        self.nkeys = len(plan.group_by)
        self.bucketed = plan.interval_seconds is not None
        self.groups: list[GroupKey] | None = None
        self.stored: dict[str, Materialized] | None = None  # TimescaleDB's aggregates, read once
        self.checks: list[tuple[str, TimeWindow]] = []  # refresh checks of the segments (view, window)
        self.pending: list[Pending] = []  # what `pending_ranges` found for each check
        self.exact: Percentiles = {}  # exact percentiles read with the states (`raw_columns.with_exact`)
        # Everything that shapes this query's statements but the window (bound at execution).
        self.shape: tuple[Any, ...] = (
            sources.capabilities,  # the dialect, time_bucket or date_bin, aggregates or rollup tables
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
        return assemble(self.plan, points, series, totals, exact)

    async def _execute(self, statement: Any, *windows: TimeWindow) -> Any:
        return await self.conn.execute(statement, window_params(*windows))

    @property
    def _one_scan(self) -> bool:
        """Whether `raw_columns` may add to a raw states statement (see there: plain PostgreSQL)."""
        return self.capabilities.backend == "postgresql"

    def _groups_key(self, with_keys: bool) -> tuple[GroupKey, ...] | None:
        return tuple(self.groups) if with_keys and self.groups is not None else None

    # ------------------------------------------------------------------ reading states

    async def _finest_states(self) -> Level:
        plan = self.plan
        if plan.grain is None:
            # The totals' exact percentiles in the same scan (`raw_columns`: plain PostgreSQL, no groups).
            whole = self._one_scan and not self.nkeys and not self.bucketed
            fractions = fractions_of(plan) if whole else {}
            raw = await self._raw_states(with_bucket=self.bucketed, exact=fractions or None)
            if fractions:
                self.exact["totals"] = taken_exact(raw, fractions)
            return raw
        # Every rollup read of every segment goes into one statement (`Parts`); each segment then
        # takes its rows, in the order it would have read them alone.
        parts = Parts()
        finishes: list[Finish] = []
        edges: list[TimeWindow] = []
        for grain, part in segments(plan.window, usable_grains(plan.interval_seconds)):
            if grain is None:
                edges.append(part)
            else:
                finishes.append(await self._rollup_states(grain, part, parts))
        self.pending = await pending_ranges(self.conn, self.checks)  # before the reads they guard
        read = await parts.read(self.conn, self.nkeys + self.bucketed)
        level: Level = {}
        for finish in finishes:
            level = merge_levels(level, await finish(read))
        # Edges read together save a round trip (a bucket key keeps them apart; unbucketed they
        # merge anyway). SQLite has no round trip to save, and scans `spans` for an OR of ranges.
        for together in (
            [[edge] for edge in edges] if self.capabilities.dialect_name == "sqlite" else [edges] if edges else []
        ):
            edge_level = await self._raw_states(with_bucket=self.bucketed, windows=together, edges=True)
            level = merge_levels(level, edge_level)
        return level

    async def _rollup_states(self, grain: str, part: TimeWindow, parts: Parts) -> Finish:
        """The states of the whole `grain` buckets of `part`, kept when the segment is closed: its
        reads are added to `parts`, and the function returned takes their rows once read."""
        plan, bucketed = self.plan, self.bucketed
        key = ("rollup", self.shape, grain, bucketed)
        statement = memoized(
            key, lambda: states_statement(plan, rollup_source(plan, grain, self.capabilities), with_bucket=bucketed)
        )
        cache = self.sources.segments
        if cache is None or part.end > datetime.now(UTC):  # open: always read
            return await self._read_rollup(grain, part, key, statement, parts)
        # By bucket, kept in pieces (when buckets never straddle them): a late span drops its own.
        seconds = PIECE_SECONDS.get(grain)
        interval = plan.interval_seconds
        split = seconds is not None and interval is not None and seconds % interval == 0
        found_pieces: Level = {}
        missing: list[TimeWindow] = []
        for piece in pieces(part, seconds) if split and seconds is not None else [part]:
            found: Level | None = cache.get((key, piece.start, piece.end))
            if found is None:
                missing.append(piece)
            else:
                found_pieces.update(found)
        runs = []
        for run in _consecutive(missing):  # each run of missing pieces in one part of the statement
            generation, holds_until = cache.generation, self.sources.holds_until()
            whole = TimeWindow(start=run[0].start, end=run[-1].end)
            check = self._waiting_for_refresh(grain, whole)
            runs.append((run, generation, holds_until, check, parts.add(key, statement, whole)))

        async def finish(read: list[Level]) -> Level:
            level = dict(found_pieces)
            for run, generation, holds_until, check, at in runs:
                states_read = read[at]
                pending = [] if check is None else self.pending[check]
                for piece, states in zip(
                    run, split_by_bucket(states_read, run) if len(run) > 1 else [states_read], strict=True
                ):
                    if touches(pending, piece):
                        continue  # its aggregate changes at the next refresh: read it again until then
                    cache.put(
                        (key, piece.start, piece.end),
                        start=piece.start,
                        end=piece.end,
                        states=states,
                        generation=generation,
                        holds_until=holds_until,
                    )
                level.update(states_read)
            return level

        return finish

    def _waiting_for_refresh(self, grain: str, window: TimeWindow) -> int | None:
        """On continuous aggregates, where `self.pending` will hold the ranges of `window` written
        since the refresh (checked for every segment at once, before the read; none on rollup
        tables: the writer updates them in its own transaction)."""
        if not self.capabilities.continuous_aggregates:
            return None
        self.checks.append((aggregate_for(rollup_for(self.plan, grain).table).name, window))
        return len(self.checks) - 1

    async def _read_rollup(self, grain: str, part: TimeWindow, key: Hashable, statement: Any, parts: Parts) -> Finish:
        """The rollup states of `part`; on TimescaleDB, the materialised rows below the aggregate's
        watermark and raw spans above it, as its real-time view would (`metrics.materialized`)."""
        plan, bucketed = self.plan, self.bucketed
        if not (self.capabilities.continuous_aggregates and self.capabilities.timescaledb):
            return taking(parts.add(key, statement, part))  # the rollup tables (or emulated views)
        if self.stored is None:
            self.stored = await materialized(self.conn)
        view = aggregate_for(rollup_for(plan, grain).table).name
        stored = self.stored.get(view)
        if stored is None:  # not readable by this role: the view
            return taking(parts.add(key, statement, part))
        below: TimeWindow | None = part
        fresh: TimeWindow | None = None
        if stored.realtime and stored.watermark < part.end.timestamp():
            if stored.watermark <= part.start.timestamp():
                below, fresh = None, part
            else:
                mark = datetime.fromtimestamp(stored.watermark, UTC)
                below, fresh = TimeWindow(start=part.start, end=mark), TimeWindow(start=mark, end=part.end)
        at: int | None = None
        if below is not None:
            direct_key = ("materialized", self.shape, grain, bucketed, stored.table.fullname)
            direct = memoized(
                direct_key,
                lambda: states_statement(
                    plan, rollup_source(plan, grain, self.capabilities, stored.table), with_bucket=bucketed
                ),
            )
            at = parts.add(direct_key, direct, below)

        async def finish(read: list[Level]) -> Level:
            level: Level = {} if at is None else read[at]
            if fresh is not None:
                raw = await self._raw_states(with_bucket=bucketed, windows=[fresh], edges=True)
                level = merge_levels(level, raw)
            return level

        return finish

    async def _raw_states(
        self,
        *,
        with_bucket: bool,
        with_keys: bool = True,
        windows: list[TimeWindow] | None = None,
        edges: bool = False,
        exact: Fractions | None = None,
    ) -> Level:
        """The states of raw spans; `edges`: a rollup query's raw edges, with the histograms of
        their values; `exact`: with these exact percentiles too, as `<metric>:x<i>` (PostgreSQL)."""
        windows = windows or [self.plan.window]
        # Plain PostgreSQL reads a histogram's edge values in the same statement (an array per group).
        in_scan = histogram_selections(self.plan) if edges and self._one_scan else []
        groups = self._groups_key(with_keys)
        key = ("raw", self.shape, with_bucket, with_keys, groups, len(windows), bool(in_scan), bool(exact))

        def build() -> Any:
            plan = self.plan if with_keys else replace(self.plan, group_by=[])
            source = raw_source(
                plan, self.capabilities, groups=self.groups if with_keys else None, windows=len(windows)
            )
            statement = states_statement(plan, source, with_bucket=with_bucket, with_keys=with_keys)
            statement = with_edge_values(statement, source, in_scan) if in_scan else statement
            return with_exact(statement, source, exact) if exact else statement

        level = await self._read(memoized(key, build), windows, (self.nkeys if with_keys else 0) + with_bucket)
        if edges and not in_scan:
            await self._edge_histograms(windows, level)
        return level

    async def _edge_histograms(self, edges: list[TimeWindow], level: Level) -> None:
        """Fill the histogram states of the raw edges from their values, as the writer would."""
        plan, bucketed = self.plan, self.bucketed
        for selection in histogram_selections(plan):
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
        found: Percentiles = dict(self.exact)
        for level_name, (with_bucket, with_keys) in levels.items():
            if level_name in found:  # read with the states
                continue
            level = found.setdefault(level_name, {})
            for metric_id, (metric, fractions) in fractions_of(plan).items():
                key = ("exact", self.shape, with_bucket, with_keys, self._groups_key(with_keys), metric_id)

                def build(
                    metric: Metric = metric,
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


def _consecutive(parts: list[TimeWindow]) -> list[list[TimeWindow]]:
    runs: list[list[TimeWindow]] = []
    for part in parts:
        if runs and runs[-1][-1].end == part.start:
            runs[-1].append(part)
        else:
            runs.append([part])
    return runs
