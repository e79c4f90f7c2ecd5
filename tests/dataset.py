"""The dataset the read tests share, and independent expectations computed in Python from the
generator's own records (never from the database)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from functools import cache

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.demo.generator import generate

DATASET_TRACES = 400
DATASET_SEED = 7
DATASET_END = datetime(2026, 11, 20, tzinfo=UTC)


@cache
def records() -> tuple[tuple[SpanRecord, ...], tuple[LogRecord, ...]]:
    spans: list[SpanRecord] = []
    logs: list[LogRecord] = []
    for batch_spans, batch_logs in generate(traces=DATASET_TRACES, seed=DATASET_SEED, end=DATASET_END, days=30):
        spans.extend(batch_spans)
        logs.extend(batch_logs)
    return tuple(spans), tuple(logs)


def spans() -> tuple[SpanRecord, ...]:
    return records()[0]


def logs() -> tuple[LogRecord, ...]:
    return records()[1]


@cache
def spans_by_trace() -> dict[str, list[SpanRecord]]:
    grouped: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans():
        grouped[span.trace_id].append(span)
    return dict(grouped)


def root_of(trace_spans: list[SpanRecord]) -> SpanRecord:
    roots = [s for s in trace_spans if s.parent_span_id is None]
    return roots[0] if roots else min(trace_spans, key=lambda s: s.start_time)


def trace_start(trace_id: str) -> datetime:
    return min(s.start_time for s in spans_by_trace()[trace_id])


def models_of(trace_id: str) -> set[str]:
    return {s.model_id for s in spans_by_trace()[trace_id] if s.kind == "llm" and s.model_id}  # canonical ids
