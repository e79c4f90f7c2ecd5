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
- `inherit_in_stored_traces` runs in the write transaction, under the writer's lock on the traces,
  for the traces that already had spans (or whose spans came in several concurrent writes): it reads
  the context columns of those traces' spans, fills what is missing, and updates the changed rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
from sqlalchemy import Select, Update, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.dialect import in_bound_list
from observatory_api.db.tables import spans
from observatory_api.storage.records import SpanRecord

# The columns a span inherits from its ancestors, in `Context` order.
CONTEXT_COLUMNS = ("user_id", "session_id", "environment", "tags")
Context = tuple[str | None, str | None, str | None, list[str]]
SpanKey = tuple[str, str, datetime]  # the primary key of spans
_IDS = "trace_ids"
_IDS_PER_STATEMENT = 1000
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
    """What `inherit_in_stored_traces` changed: the new context of each span it updated, and
    the old one of those stored before this transaction."""

    changed: dict[SpanKey, Context]
    before: dict[SpanKey, Context]


@cache
def _trace_contexts(dialect_name: str) -> Select[Any]:
    # Bounded by time too: on TimescaleDB a lookup without a time bound probes every chunk.
    return select(
        spans.c.trace_id,
        spans.c.span_id,
        spans.c.start_time,
        spans.c.parent_span_id,
        *(spans.c[name] for name in CONTEXT_COLUMNS),
    ).where(
        in_bound_list(dialect_name, spans.c.trace_id, _IDS),
        spans.c.start_time >= bindparam("low", type_=spans.c.start_time.type),
        spans.c.start_time <= bindparam("high", type_=spans.c.start_time.type),
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


async def inherit_in_stored_traces(
    conn: AsyncConnection, trace_ids: Iterable[str], *, low: datetime, high: datetime, new: set[SpanKey]
) -> Inherited:
    """Fill what the spans of `trace_ids` (started between `low` and `high`) lack from their
    ancestors, in the database; `new` are the keys this transaction inserted. Call it holding the
    writer's lock on those traces, so that it sees every span another writer committed."""
    ids = sorted(set(trace_ids))
    nodes: dict[str, dict[str, tuple[Any, Context]]] = {}
    keys: dict[tuple[str, str], SpanKey] = {}
    statement = _trace_contexts(conn.dialect.name)
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        for row in await conn.execute(statement, {_IDS: chunk, "low": low, "high": high}):
            trace_id, span_id, start_time, parent, user_id, session_id, environment, tags = row
            nodes.setdefault(trace_id, {}).setdefault(span_id, (parent, (user_id, session_id, environment, tags or [])))
            keys.setdefault((trace_id, span_id), (trace_id, span_id, start_time))
    changed: dict[SpanKey, Context] = {}
    before: dict[SpanKey, Context] = {}
    for trace_id, trace in nodes.items():
        if all(parent is None or _complete(own) for parent, own in trace.values()):
            continue
        for span_id, context in resolve(trace).items():
            own = trace[span_id][1]
            if context != own:
                key = keys[(trace_id, span_id)]
                changed[key] = context
                if key not in new:
                    before[key] = own
    if changed:
        parameters = [
            {
                "k_trace_id": key[0],
                "k_span_id": key[1],
                "k_start_time": key[2],
                **dict(zip(CONTEXT_COLUMNS, context, strict=True)),
            }
            for key, context in sorted(changed.items())
        ]
        await conn.execute(_set_context(), parameters)
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
