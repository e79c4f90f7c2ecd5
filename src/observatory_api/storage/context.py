"""Context down the tree: a user, session, environment or tags set on a span apply to its descendants.

Most instrumentations name the user and the session once, on the span the application opened
(the GenAI conventions leave no other place for them); the model calls beneath it must carry them
too, or per-user costs and sessions come out empty. A span keeps what it names itself; what it
lacks it takes from its nearest ancestor that names it (tags: an empty list names none).

Spans arrive in any order: children usually before their parents (an exporter sends a span when it
ends), over several requests. So the stored values are the ones in effect: a span whose whole path
up to an ancestor naming a value is stored holds that value for good (a later span cannot come
between a span and its parent), and a stored span still missing a value can only get it from a
span that arrives later and joins its path to the root. Filling in the missing values, never
overwriting, is therefore enough, both for a new span below stored ones and for stored spans below
a new one:

- `inherit_in_batch` fills the spans of one write from their ancestors in that write (in the
  writer's thread, no query);
- `inherit_across_writes` runs in the write transaction, under the writer's lock on the traces,
  for the traces that already had spans (or whose spans came in several concurrent writes): it
  looks up the stored parents of new spans that lack something, and the stored children of new
  spans that miss what those name (then their children, and so on), by index, and updates the
  rows that change. Spans that name everything, or a batch that names nothing new, cost one
  indexed query or none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, Update, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.core.records import SpanRecord
from observatory_api.db.tables import spans
from observatory_api.db.write_sql import in_bound_list, is_empty_json_array

# The columns a span inherits from its ancestors, in `Context` order.
CONTEXT_COLUMNS = ("user_id", "session_id", "environment", "tags")
Context = tuple[str | None, str | None, str | None, list[str]]
SpanKey = tuple[str, str, datetime]  # the primary key of spans
_KEYS_PER_STATEMENT = 300  # three parameters each


def _complete(context: Context) -> bool:
    return context[0] is not None and context[1] is not None and context[2] is not None and bool(context[3])


def _filled(own: Context, above: Context) -> Context:
    return (
        own[0] if own[0] is not None else above[0],
        own[1] if own[1] is not None else above[1],
        own[2] if own[2] is not None else above[2],
        own[3] if own[3] else above[3],
    )


def resolve(nodes: Mapping[Any, tuple[Any, Context]]) -> dict[Any, Context]:
    """The context in effect of every node: `nodes` maps an id to (its parent's id, its own context).

    A node takes what it lacks from its nearest ancestor among `nodes`; the walk up stops at a
    complete context, a missing parent or a loop (a malformed trace must not hang the writer).
    """
    resolved: dict[Any, Context] = {}
    for start in nodes:
        if start in resolved:
            continue
        chain: list[Any] = []
        on_chain: set[Any] = set()
        current = start
        above: Context | None = None
        while True:
            parent, own = nodes[current]
            chain.append(current)
            on_chain.add(current)
            if _complete(own) or parent is None or parent not in nodes or parent in on_chain:
                break
            if parent in resolved:
                above = resolved[parent]
                break
            current = parent
        for node in reversed(chain):
            own = nodes[node][1]
            above = own if above is None else _filled(own, above)
            resolved[node] = above
    return resolved


def _context_of(record: SpanRecord) -> Context:
    return record.user_id, record.session_id, record.environment, record.tags


def inherit_in_batch(records: Sequence[SpanRecord]) -> list[SpanRecord]:
    """`records` with what each lacks filled from its ancestors among `records`."""
    nodes: dict[tuple[str, str], tuple[Any, Context]] = {}
    needs = False
    for record in records:
        context = _context_of(record)
        parent = None if record.parent_span_id is None else (record.trace_id, record.parent_span_id)
        nodes.setdefault((record.trace_id, record.span_id), (parent, context))
        needs = needs or (parent is not None and not _complete(context))
    if not needs:  # nothing to fill: the common case of spans that name everything themselves
        return list(records)
    resolved = resolve(nodes)
    filled = []
    for record in records:
        context = resolved[(record.trace_id, record.span_id)]
        if context != _context_of(record):
            record = msgspec.structs.replace(record, **dict(zip(CONTEXT_COLUMNS, context, strict=True)))
        filled.append(record)
    return filled


@dataclass(frozen=True, slots=True)
class Inherited:
    """What `inherit_across_writes` changed: the new context of each span it updated, and the old
    one of those stored before this transaction."""

    changed: dict[SpanKey, Context]
    before: dict[SpanKey, Context]


NOTHING_INHERITED = Inherited({}, {})


@dataclass(frozen=True, slots=True)
class NewSpan:
    """A span this transaction inserted: its key, its parent's span id and its context as stored."""

    key: SpanKey
    parent_span_id: str | None
    context: Context


_COLUMNS = (spans.c.trace_id, spans.c.span_id, spans.c.start_time, *(spans.c[name] for name in CONTEXT_COLUMNS))


def _in_traces(dialect_name: str) -> Any:
    # Bounded by time too: on TimescaleDB a lookup without a time bound probes every chunk.
    return and_(
        in_bound_list(dialect_name, spans.c.trace_id, "trace_ids"),
        spans.c.start_time >= bindparam("low", type_=spans.c.start_time.type),
        spans.c.start_time <= bindparam("high", type_=spans.c.start_time.type),
    )


@cache
def _spans_named(dialect_name: str) -> Select[Any]:
    """The context of the spans of `trace_ids` whose id is in `span_ids`."""
    return select(*_COLUMNS).where(_in_traces(dialect_name), in_bound_list(dialect_name, spans.c.span_id, "span_ids"))


@cache
def _children_missing(dialect_name: str, fields: tuple[int, ...]) -> Select[Any]:
    """The spans of `trace_ids` whose parent is in `parent_ids` and that miss one of `fields`
    (positions in CONTEXT_COLUMNS): the only stored spans a new ancestor can give something."""
    missing = [
        is_empty_json_array(dialect_name, spans.c.tags) if name == "tags" else spans.c[name].is_(None)
        for name in (CONTEXT_COLUMNS[at] for at in fields)
    ]
    return select(*_COLUMNS, spans.c.parent_span_id).where(
        _in_traces(dialect_name),
        in_bound_list(dialect_name, spans.c.parent_span_id, "parent_ids"),
        or_(*missing),
    )


@cache
def _set_context() -> Update:
    key = and_(
        spans.c.trace_id == bindparam("k_trace_id"),
        spans.c.span_id == bindparam("k_span_id"),
        spans.c.start_time == bindparam("k_start_time", type_=spans.c.start_time.type),
    )
    return (
        update(spans).where(key).values({name: bindparam(name, type_=spans.c[name].type) for name in CONTEXT_COLUMNS})
    )


def _named_bit(at: int) -> int:
    return 1 << (4 + at)


def _gap_bit(at: int) -> int:
    return 1 << at


def context_bits(dialect_name: str, columns: Any) -> Any:
    """The `traces.context_bits` aggregate over the spans `columns` of one trace: bit 4 + i when
    some span names CONTEXT_COLUMNS[i], bit i when some span with a parent misses it. Kept by the
    trace refresh, it tells the next write of the trace which look-ups can find anything."""
    terms: list[ColumnElement[Any]] = []
    for at, name in enumerate(CONTEXT_COLUMNS):
        column = columns[name]
        missing = is_empty_json_array(dialect_name, column) if name == "tags" else column.is_(None)
        terms.append(func.max(case((and_(columns.parent_span_id.is_not(None), missing), _gap_bit(at)), else_=0)))
        terms.append(func.max(case((missing, 0), else_=_named_bit(at))))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _given(context: Context) -> tuple[int, ...]:
    return tuple(at for at, value in enumerate(context) if value)


async def inherit_across_writes(
    conn: AsyncConnection, new: Sequence[NewSpan], *, stored_traces: Mapping[str, int], low: datetime, high: datetime
) -> Inherited:
    """Context down the tree between the spans `new` (inserted by this transaction, already
    filled within their own write) and the spans stored before: in `stored_traces` (trace id ->
    its `context_bits` before this transaction), started between `low` and `high`. Call it
    holding the writer's lock on those traces, so that it sees every span another writer
    committed; it updates the rows that change.

    Only the edges between a new span and a stored one can carry anything: a new span whose
    parent is stored takes what it lacks from that parent (its stored values are in effect), and
    stored spans below a new one that miss what it names take it, level by level down.
    """
    dialect_name = conn.dialect.name
    nodes: dict[tuple[str, str], tuple[Any, Context]] = {}
    for span in new:
        parent = None if span.parent_span_id is None else (span.key[0], span.parent_span_id)
        nodes.setdefault((span.key[0], span.key[1]), (parent, span.context))
    bounds = {"low": low, "high": high}
    # A new span's parent among the spans stored before.
    # Only for what the trace names somewhere: a stored parent cannot have anything else.
    wanted = {
        parent
        for parent, context in nodes.values()
        if parent is not None
        and parent not in nodes
        and parent[0] in stored_traces
        and any(not value and stored_traces[parent[0]] & _named_bit(at) for at, value in enumerate(context))
    }
    if wanted:
        parameters = {
            "trace_ids": sorted({trace_id for trace_id, _ in wanted}),
            "span_ids": sorted({span_id for _, span_id in wanted}),
        }
        for row in await conn.execute(_spans_named(dialect_name), {**parameters, **bounds}):
            if (row[0], row[1]) in wanted:
                nodes.setdefault((row[0], row[1]), (None, (row[3], row[4], row[5], row[6] or [])))
    # Within the new spans too: the new spans of one trace may come from several writes.
    resolved = resolve(nodes)
    changed: dict[SpanKey, Context] = {}
    for span in new:
        context = resolved[(span.key[0], span.key[1])]
        if context != span.context:
            changed[span.key] = context
    # Down into the stored spans, one level at a time, from the new spans that name something.
    new_keys = {span.key for span in new}
    before: dict[SpanKey, Context] = {}
    # Only what some stored span of the trace misses.
    givers = {
        (span.key[0], span.key[1]): resolved[(span.key[0], span.key[1])]
        for span in new
        if span.key[0] in stored_traces
        and any(stored_traces[span.key[0]] & _gap_bit(at) for at in _given(resolved[(span.key[0], span.key[1])]))
    }
    while givers:
        fields = tuple(sorted({at for context in givers.values() for at in _given(context)}))
        parameters = {
            "trace_ids": sorted({trace_id for trace_id, _ in givers}),
            "parent_ids": sorted({span_id for _, span_id in givers}),
        }
        found: dict[tuple[str, str], Context] = {}
        for row in await conn.execute(_children_missing(dialect_name, fields), {**parameters, **bounds}):
            key: SpanKey = (row[0], row[1], row[2])
            above = givers.get((row[0], row[7]))
            if above is None or key in before:
                continue
            # A new span below a stored one that just changed took what that one had before.
            stored = key not in new_keys
            own: Context = (row[3], row[4], row[5], row[6] or []) if stored else changed.get(key, resolved[key[:2]])
            context = _filled(own, above)
            if context != own:
                if stored:
                    before[key] = own
                changed[key] = context
                found[(row[0], row[1])] = context
        givers = found
    if changed:
        parameters_list = [
            {
                "k_trace_id": key[0],
                "k_span_id": key[1],
                "k_start_time": key[2],
                **dict(zip(CONTEXT_COLUMNS, context, strict=True)),
            }
            for key, context in sorted(changed.items())
        ]
        await conn.execute(_set_context(), parameters_list)
    return Inherited(changed, before)


async def stored_rows(conn: AsyncConnection, keys: Sequence[SpanKey]) -> list[tuple[Any, ...]]:
    """The whole `spans` rows of `keys` (few: the stored spans whose environment changed)."""
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(keys), _KEYS_PER_STATEMENT):
        chunk = keys[start : start + _KEYS_PER_STATEMENT]
        condition = or_(
            *(
                and_(spans.c.trace_id == trace_id, spans.c.span_id == span_id, spans.c.start_time == start_time)
                for trace_id, span_id, start_time in chunk
            )
        )
        found += [tuple(row) for row in await conn.execute(select(spans).where(condition))]
    return found
