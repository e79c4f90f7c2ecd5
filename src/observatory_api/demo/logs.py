"""Log lines for one demo trace: 1 to 4, tied to its spans, problems first."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.core.vocabulary import LogSeverity
from observatory_api.demo.ids import hex_id
from observatory_api.demo.plans import Node

MAX_LOGS_PER_TRACE = 4


def trace_logs(
    rng: random.Random, spans: list[SpanRecord], nodes: list[Node], *, service: str, salt: int = 0
) -> list[LogRecord]:
    """`spans` and `nodes` are the same spans, in the same order; `salt` goes into the ids (`demo.ids`)."""
    logger = service.replace("-", "_")
    problems: list[tuple[SpanRecord, LogSeverity, str]] = []
    routine: list[tuple[SpanRecord, LogSeverity, str]] = []
    for span, node in zip(spans, nodes, strict=True):
        if node.status == "error" and not node.children:
            problems.append((span, "ERROR", f"{span.name} failed: {span.status_message}"))
            if not node.escapes:
                kind = (span.status_message or "error").split(":", 1)[0]
                problems.append((span, "WARN", f"{kind} in {span.name} handled, answering with a fallback"))
        if span.finish_reason == "length":
            limit = span.attributes.get("llm.max_tokens")
            problems.append((span, "WARN", f"completion truncated at max_tokens={limit}"))
        if span.kind == "llm" and span.status != "error":
            routine.append(
                (
                    span,
                    "INFO",
                    f"{span.provider}/{span.model} answered in {span.duration_ms:.0f} ms "
                    f"({span.output_tokens} tokens, finish_reason={span.finish_reason})",
                )
            )
            routine.append((span, "DEBUG", f"calling {span.provider}/{span.model}: {span.input_tokens} prompt tokens"))
        elif span.kind in ("tool", "retriever"):
            routine.append((span, "DEBUG", f"{span.name} returned in {span.duration_ms:.0f} ms"))
    root = spans[0]
    opening: tuple[SpanRecord, LogSeverity, str] = (
        root,
        "INFO",
        f"{root.name} started for {root.user_id} (session {root.session_id})",
    )
    wanted = rng.randint(1, MAX_LOGS_PER_TRACE)
    # Problems always make it in; the opening line and a random pick of the rest fill up.
    count = min(max(wanted, len(problems)), MAX_LOGS_PER_TRACE)
    chosen = [*problems, opening, *rng.sample(routine, len(routine))][:count]
    records = [
        LogRecord(
            time=_time_within(rng, span, at_end=severity in ("ERROR", "WARN") or "answered" in body),
            log_id=hex_id(rng, 128, salt),
            trace_id=span.trace_id,
            span_id=span.span_id,
            service_name=span.service_name,
            severity=severity,
            body=body,
            attributes={"logger": f"{logger}.{span.kind}", "thread": f"worker-{rng.randint(1, 8)}"},
        )
        for span, severity, body in chosen
    ]
    records.sort(key=lambda record: record.time)
    return records


def _time_within(rng: random.Random, span: SpanRecord, *, at_end: bool) -> datetime:
    # Logs fall inside their span: near its start, or at its end for outcomes.
    if at_end:
        return span.end_time
    offset = min(rng.uniform(0.05, 2.0), span.duration_ms)
    return span.start_time + timedelta(milliseconds=offset)
