"""One DataLoader per relation, made per request: each relation costs one statement per level.

Content the caller's role may not read is redacted here, once, by the same functions REST uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from observatory_api.logs.schemas import LogEntry
from observatory_api.security.redaction import redact_logs, redact_spans
from observatory_api.spans.schemas import SpanNode
from observatory_api.traces.repository import TraceRepository
from observatory_api.traces.schemas import TraceSummary


@dataclass
class Loaders:
    trace: DataLoader[str, TraceSummary | None]
    spans_of_trace: DataLoader[str, list[SpanNode]]
    logs_of_trace: DataLoader[str, list[LogEntry]]


def make_loaders(traces: TraceRepository, *, allow_content: bool) -> Loaders:
    async def load_traces(ids: Sequence[str]) -> list[TraceSummary | None]:
        found = await traces.get_summaries(ids)
        return [found.get(trace_id) for trace_id in ids]

    async def load_spans(ids: Sequence[str]) -> list[list[SpanNode]]:
        found = await traces.spans_of_traces(ids)
        if not allow_content:
            for spans in found.values():
                redact_spans(spans)
        return [found[trace_id] for trace_id in ids]

    async def load_logs(ids: Sequence[str]) -> list[list[LogEntry]]:
        found = await traces.logs_of_traces(ids)
        if not allow_content:
            for logs in found.values():
                redact_logs(logs)
        return [found[trace_id] for trace_id in ids]

    return Loaders(
        trace=DataLoader(load_fn=load_traces),
        spans_of_trace=DataLoader(load_fn=load_spans),
        logs_of_trace=DataLoader(load_fn=load_logs),
    )
