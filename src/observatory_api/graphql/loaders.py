"""One DataLoader per relation, made per request: each relation costs one statement per level
(a few for model usage, whatever the number of models; a usage with `compareWith` is answered
per model by the REST function, which the batch does not replace).

What the caller's role may not read is left out by the repositories, from `allow_content`.
Every batch counts the rows it reads against the request's row budget, and none starts once the
budget is spent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from strawberry.dataloader import DataLoader

from observatory_api.core.errors import DomainError
from observatory_api.graphql.budget import RowBudget
from observatory_api.logs.schemas import LogEntry
from observatory_api.metrics.repository import MetricRepository
from observatory_api.models.repository import ModelRepository
from observatory_api.models.schemas import ModelUsage
from observatory_api.models.usage_batch import ModelKey, UsageRequest, models_usage
from observatory_api.sessions.repository import SessionRepository
from observatory_api.settings import QuerySettings
from observatory_api.spans.repository import SpanRepository
from observatory_api.spans.schemas import SpanNode
from observatory_api.traces.repository import TraceRepository
from observatory_api.traces.schemas import TraceSummary

SeenRange = tuple[datetime | None, datetime | None]
K = TypeVar("K")
G = TypeVar("G", bound=Hashable)
V = TypeVar("V", bound=Hashable)


@dataclass(frozen=True, slots=True)
class UsageKey:
    model_id: str
    provider: str
    name: str
    request: UsageRequest


@dataclass(frozen=True, slots=True)
class ComparedUsageKey:
    provider: str
    name: str
    request: UsageRequest
    compare_with: str


@dataclass(frozen=True, slots=True)
class SessionTracesKey:
    session_id: str
    limit: int


@dataclass
class Loaders:
    trace: DataLoader[str, TraceSummary | None]
    spans_of_trace: DataLoader[str, list[SpanNode]]
    logs_of_trace: DataLoader[str, list[LogEntry]]
    traces_of_session: DataLoader[SessionTracesKey, list[TraceSummary]]
    model_seen: DataLoader[ModelKey, SeenRange]
    model_snapshots: DataLoader[str, list[str]]
    model_usage: DataLoader[UsageKey, ModelUsage]
    compared_usage: DataLoader[ComparedUsageKey, ModelUsage]


def make_loaders(
    *,
    traces: TraceRepository,
    sessions: SessionRepository,
    spans: SpanRepository,
    metrics: MetricRepository,
    models: ModelRepository,
    limits: QuerySettings,
    allow_content: bool,
    budget: RowBudget,
) -> Loaders:
    async def load_traces(ids: Sequence[str]) -> list[TraceSummary | None]:
        budget.check()
        found = await traces.get_summaries(ids)
        budget.reads(len(found))
        return [found.get(trace_id) for trace_id in ids]

    async def load_spans(ids: Sequence[str]) -> list[list[SpanNode]]:
        budget.check()
        found = await traces.spans_of_traces(ids, allow_content=allow_content)
        for trace_id in ids:
            # Counted already when a trace's `spans` or `rootSpans` reserved its span count.
            budget.reads(len(found[trace_id]), key=spans_read(trace_id))
        return [found[trace_id] for trace_id in ids]

    async def load_logs(ids: Sequence[str]) -> list[list[LogEntry]]:
        budget.check()
        found = await traces.logs_of_traces(ids, allow_content=allow_content)
        budget.reads(sum(len(logs) for logs in found.values()))
        return [found[trace_id] for trace_id in ids]

    async def load_session_traces(keys: Sequence[SessionTracesKey]) -> list[list[TraceSummary]]:
        # One statement per distinct `limit` (in practice one).
        found: dict[SessionTracesKey, list[TraceSummary]] = {}
        for limit, ids in _grouped(keys, lambda k: k.limit, lambda k: k.session_id).items():
            budget.check()
            by_session = await sessions.traces_of_sessions(ids, limit=limit)
            budget.reads(sum(len(summaries) for summaries in by_session.values()))
            found.update({SessionTracesKey(session_id, limit): by_session[session_id] for session_id in ids})
        return [found[key] for key in keys]

    async def load_seen(keys: Sequence[ModelKey]) -> list[SeenRange]:
        found = await spans.model_seen_ranges(keys)
        return [found[key] for key in keys]

    async def load_snapshots(model_ids: Sequence[str]) -> list[list[str]]:
        found = await spans.model_snapshots(model_ids)
        return [found[model_id] for model_id in model_ids]

    async def load_usage(keys: Sequence[UsageKey]) -> list[ModelUsage]:
        # One batch per distinct range, interval and top-N (in practice one).
        found: dict[tuple[UsageRequest, ModelKey], ModelUsage] = {}
        for request, named in _grouped(keys, lambda k: k.request, lambda k: (k.model_id, k.provider, k.name)).items():
            usage = await models_usage(metrics, named, request, limits)
            found.update({(request, key): value for key, value in usage.items()})
        return [found[(key.request, (key.provider, key.name))] for key in keys]

    async def load_compared_usage(keys: Sequence[ComparedUsageKey]) -> list[ModelUsage | BaseException]:
        # One REST answer per distinct key, one after the other (the pool is shared with the
        # request's other fields); a failure (an unknown `compareWith`) fails only its own fields.
        answers: list[ModelUsage | BaseException] = []
        for key in keys:
            try:
                answers.append(
                    await models.model_usage(
                        key.provider,
                        key.name,
                        window=key.request.window,
                        interval=key.request.interval,
                        limits=limits,
                        top_users=key.request.top_users,
                        compare_with=key.compare_with,
                    )
                )
            except DomainError as error:
                answers.append(error)
        return answers

    return Loaders(
        trace=DataLoader(load_fn=load_traces),
        spans_of_trace=DataLoader(load_fn=load_spans),
        logs_of_trace=DataLoader(load_fn=load_logs),
        traces_of_session=DataLoader(load_fn=load_session_traces),
        model_seen=DataLoader(load_fn=load_seen),
        model_snapshots=DataLoader(load_fn=load_snapshots),
        model_usage=DataLoader(load_fn=load_usage),
        compared_usage=DataLoader(load_fn=load_compared_usage),
    )


def spans_read(trace_id: str) -> tuple[str, str]:
    """The budget key of reading a trace's spans (one read serves every field that needs them)."""
    return ("spans", trace_id)


def _grouped(keys: Sequence[K], group: Callable[[K], G], value: Callable[[K], V]) -> dict[G, list[V]]:
    """The distinct values of `keys`, by group, in first-seen order."""
    grouped: dict[G, dict[V, None]] = defaultdict(dict)
    for key in keys:
        grouped[group(key)][value(key)] = None
    return {name: list(values) for name, values in grouped.items()}
