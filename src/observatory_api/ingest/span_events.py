"""Span events as stored, and the time to first token, which instrumentations report in
attributes (in milliseconds or in seconds), as a completion start time, or only as the time of a
streaming event.

The decoders put each event's timestamp under EVENT_TIME; stored events carry it as `time`
(RFC 3339), next to their name and attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from observatory_api.ingest.limits import EARLIEST_NS, LATEST_NS

EVENT_TIME = "time_unix_nano"
# In priority order; the first usable one wins (the millisecond key is in mapping.SPAN_ATTRIBUTES).
SECOND_KEYS = (
    "gen_ai.response.time_to_first_chunk",  # OpenTelemetry GenAI, seconds
    "gen_ai.server.time_to_first_token",  # OpenLIT, seconds
)
COMPLETION_START_KEYS = ("langfuse.observation.completion_start_time",)  # Langfuse, a timestamp
# Without one of these attributes or an event, first_token_ms has nothing to find.
FIRST_TOKEN_KEYS = frozenset(SECOND_KEYS + COMPLETION_START_KEYS)
# The first of these events marks the first token: OpenInference's, and OpenLLMetry's one event per chunk.
FIRST_TOKEN_EVENTS = frozenset(
    {"First Token Stream Event", "gen_ai.content.completion.chunk", "llm.content.completion.chunk"}
)


def stored_events(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as `attributes.events` keeps them: name, time and attributes (name and time win)."""
    stored = []
    for event in events:
        attributes = {key: value for key, value in event.items() if key != EVENT_TIME}
        moment = _event_time(event)
        if moment is not None:
            attributes["time"] = moment.isoformat()
        attributes["name"] = event.get("name")
        stored.append(attributes)
    return stored


def first_token_ms(
    attributes: Mapping[str, Any], events: Sequence[dict[str, Any]], start_ns: int, used: set[str]
) -> float | None:
    """Milliseconds from the span's start to its first token, from the attributes in seconds,
    the completion start time, or the first streaming event; None when nothing says it. The
    attribute read is added to `used` (kept out of the span's attributes, like every mapped key)."""
    for key in SECOND_KEYS:
        seconds = _number(attributes.get(key))
        if seconds is not None:
            used.add(key)
            return seconds * 1000
    for key in COMPLETION_START_KEYS:
        started = _timestamp_ns(attributes.get(key))
        if started is not None and started >= start_ns:
            return (started - start_ns) / 1e6
    times = [t for e in events if e.get("name") in FIRST_TOKEN_EVENTS and (t := e.get(EVENT_TIME)) is not None]
    first = min((t for t in times if isinstance(t, int) and t >= start_ns), default=None)
    return None if first is None else (first - start_ns) / 1e6


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _timestamp_ns(value: Any) -> int | None:
    """An RFC 3339 timestamp (Langfuse sends it JSON-encoded, in quotes) as Unix nanoseconds."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().strip('"'))
    except ValueError:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return int(moment.timestamp() * 1e6) * 1000


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    nanoseconds = event.get(EVENT_TIME)
    if not isinstance(nanoseconds, int) or not EARLIEST_NS <= nanoseconds < LATEST_NS:
        return None
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC)
