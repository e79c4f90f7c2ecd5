from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.demo.calls import CATALOGUE
from observatory_api.demo.generator import generate
from observatory_api.models.pricing import ModelPrices, price_usage

END = datetime(2025, 6, 2, 12, 30, tzinfo=UTC)
TRACES = 3000
HEX_32 = re.compile(r"[0-9a-f]{32}")
HEX_16 = re.compile(r"[0-9a-f]{16}")


@cache
def dataset() -> tuple[list[SpanRecord], list[LogRecord]]:
    spans: list[SpanRecord] = []
    logs: list[LogRecord] = []
    for batch_spans, batch_logs in generate(traces=TRACES, seed=42, end=END, days=30):
        spans += batch_spans
        logs += batch_logs
    return spans, logs


@cache
def by_trace() -> dict[str, list[SpanRecord]]:
    grouped: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in dataset()[0]:
        grouped[span.trace_id].append(span)
    return grouped


def test_same_seed_and_arguments_give_identical_output() -> None:
    first = list(generate(traces=250, seed=3, end=END, days=7, batch_size=100))
    second = list(generate(traces=250, seed=3, end=END, days=7, batch_size=100))
    assert first == second
    assert list(generate(traces=250, seed=4, end=END, days=7, batch_size=100)) != first


def test_batches_hold_whole_traces() -> None:
    batches = list(generate(traces=250, seed=1, end=END, batch_size=100))
    roots_per_batch = [sum(1 for s in spans if s.parent_span_id is None) for spans, _ in batches]
    assert roots_per_batch == [100, 100, 50]
    for spans, logs in batches:
        trace_ids = {s.trace_id for s in spans}
        assert {log.trace_id for log in logs} <= trace_ids


def test_every_trace_has_one_root_at_least_one_llm_span_and_one_to_eight_spans() -> None:
    assert len(by_trace()) == TRACES
    for trace_spans in by_trace().values():
        assert 1 <= len(trace_spans) <= 8
        assert sum(1 for s in trace_spans if s.parent_span_id is None) == 1
        assert any(s.kind == "llm" for s in trace_spans)


def test_parents_are_in_the_same_trace_and_contain_their_children() -> None:
    for trace_spans in by_trace().values():
        spans_by_id = {s.span_id: s for s in trace_spans}
        assert len(spans_by_id) == len(trace_spans)
        for span in trace_spans:
            depth, current = 1, span
            while current.parent_span_id is not None:
                parent = spans_by_id[current.parent_span_id]
                assert parent.start_time <= current.start_time
                assert current.end_time <= parent.end_time
                depth, current = depth + 1, parent
            assert depth <= 3


def test_ids_are_lowercase_hex_of_the_right_length_and_unique() -> None:
    spans, logs = dataset()
    assert all(HEX_32.fullmatch(s.trace_id) and HEX_16.fullmatch(s.span_id) for s in spans)
    assert all(s.parent_span_id is None or HEX_16.fullmatch(s.parent_span_id) for s in spans)
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)
    assert all(HEX_32.fullmatch(log.log_id) for log in logs)
    assert len({log.log_id for log in logs}) == len(logs)


def test_times_are_aware_inside_the_window_and_consistent() -> None:
    spans, logs = dataset()
    start = END - timedelta(days=30)
    for span in spans:
        assert span.start_time.tzinfo is not None
        assert start <= span.start_time <= span.end_time <= END
        assert span.duration_ms == pytest.approx((span.end_time - span.start_time) / timedelta(milliseconds=1))
    assert all(start <= log.time <= END for log in logs)


def test_traffic_follows_a_daily_and_weekly_shape() -> None:
    roots = [s for s in dataset()[0] if s.parent_span_id is None]
    afternoon = sum(1 for s in roots if 12 <= s.start_time.hour < 18)
    night = sum(1 for s in roots if 0 <= s.start_time.hour < 6)
    assert afternoon > 2 * night
    weekend_days = sum(1 for day in range(30) if (END - timedelta(days=day)).weekday() >= 5)
    weekend = sum(1 for s in roots if s.start_time.weekday() >= 5) / weekend_days
    weekday = sum(1 for s in roots if s.start_time.weekday() < 5) / (30 - weekend_days)
    assert weekend < 0.8 * weekday


def test_error_share_is_a_few_percent_and_errors_look_like_errors() -> None:
    roots = [s for s in dataset()[0] if s.parent_span_id is None]
    failed_traces = {s.trace_id for s in dataset()[0] if s.status == "error"}
    assert 0.01 <= len(failed_traces) / len(roots) <= 0.15
    for span in dataset()[0]:
        if span.kind == "llm" and span.status == "error":
            assert span.finish_reason is None
            assert span.output is None
            assert re.match(r"\w+Error: ", span.status_message or "")


def test_llm_spans_carry_usage_priced_from_the_catalogue() -> None:
    llm_spans = [s for s in dataset()[0] if s.kind == "llm" and s.status != "error"]
    assert {s.finish_reason for s in llm_spans} == {"stop", "length", "tool_calls"}
    for span in llm_spans:
        assert span.input_tokens
        assert span.output_tokens
        assert span.time_to_first_token_ms
        assert span.total_tokens == span.input_tokens + span.output_tokens
        assert span.time_to_first_token_ms <= span.duration_ms
        entry = CATALOGUE[span.model_id or ""]  # the catalogue's ids are canonical model ids
        expected = price_usage(
            ModelPrices.from_row(entry),
            input_tokens=span.input_tokens,
            output_tokens=span.output_tokens,
            cache_read_input_tokens=span.cache_read_input_tokens or 0,
            cache_creation_input_tokens=span.cache_creation_input_tokens or 0,
            reasoning_output_tokens=span.reasoning_output_tokens or 0,
        )
        assert span.cost_usd == pytest.approx(expected)
    assert any(s.cache_read_input_tokens for s in llm_spans)
    assert any(s.reasoning_output_tokens for s in llm_spans)


def test_model_mix_is_weighted() -> None:
    models = Counter(s.model for s in dataset()[0] if s.kind == "llm")
    top_two = {model for model, _ in models.most_common(2)}
    assert top_two == {"gpt-4o-mini", "claude-sonnet-4"}
    providers = {s.provider for s in dataset()[0] if s.kind == "llm"}
    # As the writer stores them: the GenAI conventions' provider names.
    assert providers == {"openai", "anthropic", "gcp.gemini", "mistral_ai", "cohere", "groq", "deepseek"}


def test_users_sessions_environments_and_tags() -> None:
    roots = [s for s in dataset()[0] if s.parent_span_id is None]
    users = {s.user_id for s in roots}
    sessions = Counter(s.session_id for s in roots if s.session_id)
    assert 1 < len(users) <= 300
    assert 1 < len(sessions) <= 1500
    assert sum(sessions.values()) / len(sessions) >= 2  # several traces per session
    environments = Counter(s.environment for s in roots)
    assert set(environments) == {"production", "staging", "development"}
    assert environments.most_common(1)[0][0] == "production"
    assert all(len(s.tags) <= 3 and len(set(s.tags)) == len(s.tags) for s in roots)
    for trace_spans in by_trace().values():
        # Trace-level fields are the same on every span of the trace.
        assert len({(s.user_id, s.session_id, s.environment, tuple(s.tags)) for s in trace_spans}) == 1


def test_logs_belong_to_spans_and_fall_inside_them() -> None:
    spans, logs = dataset()
    spans_by_key = {(s.trace_id, s.span_id): s for s in spans}
    per_trace = Counter(log.trace_id for log in logs)
    assert set(per_trace) == set(by_trace())
    assert all(1 <= count <= 4 for count in per_trace.values())
    for log in logs:
        span = spans_by_key[(log.trace_id, log.span_id)]
        assert span.start_time <= log.time <= span.end_time
        assert log.service_name == span.service_name
    severities = Counter(log.severity for log in logs)
    assert severities["INFO"] + severities["DEBUG"] > 0.8 * len(logs)
    failing_traces = {s.trace_id for s in spans if s.status == "error"}
    assert {log.trace_id for log in logs if log.severity == "ERROR"} == failing_traces


def test_naive_end_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        next(generate(traces=1, end=datetime(2025, 1, 1)))


def test_generations_ending_at_other_times_share_no_id() -> None:
    # `serve --demo` then `seed` the next day: same seed, another end. Every id must differ.
    def ids(end: datetime) -> tuple[set[str], set[tuple[str, str]], set[str | None], set[str]]:
        spans: list[SpanRecord] = []
        logs: list[LogRecord] = []
        for batch_spans, batch_logs in generate(traces=300, seed=42, end=end, days=30):
            spans += batch_spans
            logs += batch_logs
        return (
            {s.trace_id for s in spans},
            {(s.trace_id, s.span_id) for s in spans},
            {s.session_id for s in spans} - {None},
            {log.log_id for log in logs},
        )

    first, later = ids(END), ids(END + timedelta(days=4, hours=21))
    for one, other in zip(first, later, strict=True):
        assert one and not one & other
    assert ids(END) == first
