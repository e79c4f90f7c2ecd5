"""Context down the tree, through TelemetryWriter on real SQLite and PostgreSQL: a user, session,
environment or tags set on an ancestor reach every descendant, whatever order and grouping the
spans arrive in, and the summaries and rollups count them under the inherited values."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import sessions, spans, traces
from observatory_api.metrics.rollup_tables import ROLLUPS
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.integration.storage.test_writer import span

ROOT = {"user_id": "u-root", "session_id": "s-1", "environment": "prod", "tags": ["team:a"]}
# r -> a -> b (an LLM call) -> c (names its own user) -> d
TREE: dict[str, dict[str, Any]] = {
    "r": {"parent": None, **ROOT},
    "a": {"parent": "r", "offset_ms": 10},
    "b": {"parent": "a", "offset_ms": 20, "kind": "llm", "model": "m", "input_tokens": 7, "cost_usd": 0.5},
    "c": {"parent": "b", "offset_ms": 30, "user_id": "u-child"},
    "d": {"parent": "c", "offset_ms": 40, "kind": "llm", "model": "m", "input_tokens": 3, "cost_usd": 0.25},
}
EXPECTED = {
    "r": ("u-root", "s-1", "prod", ["team:a"]),
    "a": ("u-root", "s-1", "prod", ["team:a"]),
    "b": ("u-root", "s-1", "prod", ["team:a"]),
    "c": ("u-child", "s-1", "prod", ["team:a"]),  # its own user wins over the inherited one
    "d": ("u-child", "s-1", "prod", ["team:a"]),  # from its nearest ancestor naming one
}


def tree_span(name: str, trace_id: str) -> SpanRecord:
    fields = dict(TREE[name])
    parent = fields.pop("parent")
    return span(name, parent=parent, trace_id=trace_id, length_ms=100 - fields.get("offset_ms", 0), **fields)


async def contexts(engine: AsyncEngine) -> dict[tuple[str, str], tuple[Any, ...]]:
    columns = (spans.c.user_id, spans.c.session_id, spans.c.environment, spans.c.tags)
    async with engine.connect() as conn:
        rows = await conn.execute(select(spans.c.trace_id, spans.c.span_id, *columns))
    return {(row[0], row[1].rstrip("0")): tuple(row[2:]) for row in rows}


async def assert_rollups_follow_the_spans(engine: AsyncEngine) -> None:
    """Per environment, every rollup table counts the spans, tokens and cost the raw rows hold."""
    async with engine.connect() as conn:
        raw = {
            row[0]: tuple(row[1:])
            for row in await conn.execute(
                select(
                    spans.c.environment, func.count(), func.sum(spans.c.input_tokens), func.sum(spans.c.cost_usd)
                ).group_by(spans.c.environment)
            )
        }
        for rollup in ROLLUPS:
            table = rollup.table
            if "environment" not in table.c:
                total = await conn.scalar(select(func.sum(table.c.span_count)))
                assert total == sum(counts[0] for counts in raw.values()), table.name
                continue
            found = {
                row[0]: tuple(row[1:])
                for row in await conn.execute(
                    select(
                        table.c.environment,
                        func.sum(table.c.span_count),
                        func.sum(table.c.input_tokens_sum),
                        func.sum(table.c.cost_usd_sum),
                    ).group_by(table.c.environment)
                )
            }
            assert set(found) == set(raw), table.name
            for environment, (count, tokens, cost) in raw.items():
                assert found[environment][0] == count, (table.name, environment)
                assert found[environment][1] == (tokens or 0), (table.name, environment)
                assert found[environment][2] == pytest.approx(cost or 0.0), (table.name, environment)


async def test_every_arrival_order_gives_every_descendant_the_context(migrated_engine: AsyncEngine) -> None:
    """Each of the 120 orders of the five spans, one write each: parents first, children first,
    a grandchild before its parent, the middle of the chain last."""
    writer = TelemetryWriter(migrated_engine)
    orders = list(itertools.permutations(TREE))
    for index, order in enumerate(orders):
        trace_id = f"{index:032x}"
        for name in order:
            assert await writer.write_spans([tree_span(name, trace_id)]) == 1

    found = await contexts(migrated_engine)
    for index, order in enumerate(orders):
        for name, expected in EXPECTED.items():
            assert found[(f"{index:032x}", name)] == expected, (order, name)

    async with migrated_engine.connect() as conn:
        summaries = (await conn.execute(select(traces.c.user_id, traces.c.session_id, traces.c.environment))).all()
        session = (await conn.execute(select(sessions))).mappings().one()
    assert set(summaries) == {("u-root", "s-1", "prod")}
    assert (session["session_id"], session["user_id"], session["trace_count"]) == ("s-1", "u-root", len(orders))
    assert session["input_tokens"] == 10 * len(orders)
    assert session["cost_usd"] == pytest.approx(0.75 * len(orders))
    await assert_rollups_follow_the_spans(migrated_engine)


@pytest.mark.parametrize(
    "batches",
    [
        [["r", "a", "b", "c", "d"]],  # one write, parents first
        [["d", "c", "b", "a", "r"]],  # one write, children first
        [["d", "b"], ["c", "a"], ["r"]],  # as an exporter sends them: spans as they end
        [["r", "c"], ["d", "a"], ["b"]],  # the link in the middle last
    ],
)
async def test_writes_of_several_spans(migrated_engine: AsyncEngine, batches: list[list[str]]) -> None:
    writer = TelemetryWriter(migrated_engine)
    for batch in batches:
        await writer.write_spans([tree_span(name, "f" * 32) for name in batch])
    found = await contexts(migrated_engine)
    assert {name: found[("f" * 32, name)] for name in EXPECTED} == EXPECTED
    await assert_rollups_follow_the_spans(migrated_engine)


async def test_concurrent_writes_of_one_trace(migrated_engine: AsyncEngine) -> None:
    """Writes in flight together are merged into one transaction (group commit) or run one after
    the other; either way the spans of one trace in different writes find each other."""
    writer = TelemetryWriter(migrated_engine)
    orders = list(itertools.permutations(TREE))[::7]
    for index, order in enumerate(orders):
        trace_id = f"{index + 1:032x}"
        await asyncio.gather(*(writer.write_spans([tree_span(name, trace_id)]) for name in order))
    found = await contexts(migrated_engine)
    for index, order in enumerate(orders):
        assert {name: found[(f"{index + 1:032x}", name)] for name in EXPECTED} == EXPECTED, order
    await assert_rollups_follow_the_spans(migrated_engine)


async def test_a_stored_span_moves_to_the_environment_it_inherits(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    child = span("b", parent="r", kind="llm", model="m", input_tokens=7, cost_usd=0.5)
    await writer.write_spans([child])
    async with migrated_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(ROLLUPS[0].table)) == 1
    await writer.write_spans([span("r", environment="prod", length_ms=500)])

    assert (await contexts(migrated_engine))[("a" * 32, "b")][2] == "prod"
    await assert_rollups_follow_the_spans(migrated_engine)
    async with migrated_engine.connect() as conn:
        minute = ROLLUPS[0].table
        left = await conn.scalar(select(func.count()).select_from(minute).where(minute.c.environment.is_(None)))
    assert left == 0  # the row the span left had nothing else: it is gone


async def test_a_span_naming_everything_inherits_nothing(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    own = {"user_id": "u2", "session_id": "s2", "environment": "dev", "tags": ["x"]}
    await writer.write_spans([span("c", parent="r", offset_ms=5, **own)])
    await writer.write_spans([span("r", **ROOT)])
    found = await contexts(migrated_engine)
    assert found[("a" * 32, "c")] == ("u2", "s2", "dev", ["x"])
    async with migrated_engine.connect() as conn:
        trace = (await conn.execute(select(traces))).mappings().one()
    assert (trace["user_id"], trace["session_id"]) == ("u-root", "s-1")  # the root's


async def test_context_stays_within_its_trace(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    await writer.write_spans([span("r", **ROOT)])
    # Same span ids, another trace: no parent there.
    await writer.write_spans([span("a", parent="r", trace_id="b" * 32, offset_ms=10, length_ms=10)])
    assert (await contexts(migrated_engine))[("b" * 32, "a")] == (None, None, None, [])


async def test_a_parent_loop_does_not_hang_the_writer(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    looped = [span("x", parent="y"), span("y", parent="x", offset_ms=1, user_id="u")]
    await asyncio.wait_for(writer.write_spans(looped), timeout=30)
    found = await contexts(migrated_engine)
    assert found[("a" * 32, "x")][0] == "u"
    later = span("z", parent="x", offset_ms=2, length_ms=5)
    await asyncio.wait_for(writer.write_spans([later]), timeout=30)
    assert (await contexts(migrated_engine))[("a" * 32, "z")][0] == "u"
