"""Time to first token from every way instrumentations report it, and events as stored."""

from __future__ import annotations

from observatory_api.ingest.span_events import EVENT_TIME, first_token_ms, stored_events

START = 1_764_000_000_000_000_000  # ns


def test_seconds_attributes_are_read_in_priority_order() -> None:
    used: set[str] = set()
    attributes = {"gen_ai.server.time_to_first_token": 0.25, "gen_ai.response.time_to_first_chunk": "0.125"}
    assert first_token_ms(attributes, [], START, used) == 125.0
    assert used == {"gen_ai.response.time_to_first_chunk"}


def test_unusable_seconds_give_way_to_the_next_source() -> None:
    events = [{"name": "First Token Stream Event", EVENT_TIME: START + 80_000_000}]
    for bad in ("soon", -1, float("nan"), True, None, [1]):
        used: set[str] = set()
        assert first_token_ms({"gen_ai.server.time_to_first_token": bad}, events, START, used) == 80.0
        assert used == set()


def test_langfuse_completion_start_time() -> None:
    started = '"2025-11-24T16:00:00.120000+00:00"'  # JSON-encoded, as Langfuse's SDK sends it
    start = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
    assert first_token_ms({"langfuse.observation.completion_start_time": started}, [], start, set()) == 120.0


def test_the_first_streaming_event_marks_the_first_token() -> None:
    chunks = [
        {"name": "gen_ai.content.completion.chunk", EVENT_TIME: START + 95_000_000},
        {"name": "gen_ai.content.completion.chunk", EVENT_TIME: START + 80_500_000},
        {"name": "exception", EVENT_TIME: START + 10_000_000},  # not a token
        {"name": "gen_ai.content.completion.chunk", EVENT_TIME: START - 1},  # before the span: ignored
        {"name": "gen_ai.content.completion.chunk", EVENT_TIME: None},
    ]
    assert first_token_ms({}, chunks, START, set()) == 80.5
    assert first_token_ms({}, [{"name": "exception", EVENT_TIME: START + 5}], START, set()) is None


def test_stored_events_carry_their_time_and_name() -> None:
    events = [
        {"name": "retry", "attempt": 2, EVENT_TIME: START},
        {"name": "no time", EVENT_TIME: 0},
        {"name": "absurd", EVENT_TIME: 10**30},
    ]
    stored = stored_events(events)
    assert stored[0] == {"attempt": 2, "time": "2025-11-24T16:00:00+00:00", "name": "retry"}
    assert stored[1] == {"name": "no time"} and stored[2] == {"name": "absurd"}
