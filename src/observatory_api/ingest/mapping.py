"""The one table from OpenTelemetry attributes to span columns, and the mapping of OTLP spans by it.

GenAI semantic conventions (current and deprecated names), OpenInference, OpenLLMetry (Traceloop:
its association properties and indexed prompt attributes), OpenLIT, Langfuse's OTel attributes
(current and older spellings) and the Vercel AI SDK's telemetry metadata. The first key present
wins; every attribute not used for a column is kept in `attributes`, and resource attributes other
than service and environment under `attributes["resource"]`. The attribute mapping table of docs/ingest.md
lists these keys per instrumentation (a test keeps the two in step). A user, session, environment
or tags missing on a span is taken from its nearest ancestor by the writer (`storage.context`).
Log records are mapped in log_mapping.py; the value checks both use are in values.py.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, cast

from observatory_api.core.records import TOKEN_COUNTS, SpanRecord
from observatory_api.core.vocabulary import SpanKind, SpanStatus
from observatory_api.ingest.limits import RejectedRecord
from observatory_api.ingest.otlp import OtlpSpan
from observatory_api.ingest.report import IngestReport, service_name_of
from observatory_api.ingest.span_events import FIRST_TOKEN_KEYS, first_token_ms, stored_events
from observatory_api.ingest.values import as_float, as_int, as_text, check_time, timestamp_of

# column -> attribute keys, in priority order (attributes.toml beside this module)
_ATTRIBUTES = tomllib.loads((Path(__file__).parent / "attributes.toml").read_text(encoding="utf-8"))
SPAN_ATTRIBUTES: dict[str, tuple[str, ...]] = {column: tuple(keys) for column, keys in _ATTRIBUTES["span"].items()}
RESOURCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    column: tuple(keys) for column, keys in _ATTRIBUTES["resource"].items()
}
# Values of the kind attributes -> our span kinds.
KIND_VALUES: dict[str, SpanKind] = {
    "llm": "llm",
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embedding": "embedding",
    "embeddings": "embedding",
    "chain": "chain",
    "workflow": "chain",
    "task": "chain",
    "agent": "agent",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "tool": "tool",
    "execute_tool": "tool",
    "retriever": "retriever",
    "reranker": "retriever",
}
_INTEGER_COLUMNS = frozenset(TOKEN_COUNTS)
OPENLLMETRY_INDEXED = {"input": "gen_ai.prompt.", "output": "gen_ai.completion."}
MAX_NAME = 500


# key -> (its place among all the keys in priority order, its column): one pass over the keys a span
# holds instead of a look-up of every candidate key of every column.
_KEY_ORDER: dict[str, tuple[int, str]] = {
    key: (order, column)
    for order, (column, key) in enumerate((column, key) for column, keys in SPAN_ATTRIBUTES.items() for key in keys)
}
_MAPPED_KEYS = frozenset(_KEY_ORDER)


def _mapped(attributes: Mapping[str, Any], skipped: frozenset[str], used: set[str]) -> dict[str, Any]:
    """Column -> the value of its first key present (None when none is); the keys read go to `used`.

    A blank string says nothing (an empty gen_ai.conversation.id beside a real session.id): the
    next key is tried, and the blank value stays in `attributes`.
    """
    values: dict[str, Any] = dict.fromkeys(SPAN_ATTRIBUTES)
    present = _MAPPED_KEYS.intersection(attributes)
    for key in sorted(present, key=_KEY_ORDER.__getitem__) if len(present) > 1 else present:
        column = _KEY_ORDER[key][1]
        if values[column] is not None or column in skipped:
            continue
        value = attributes[key]
        if value is not None and not (isinstance(value, str) and not value.strip()):
            values[column] = value
            used.add(key)
    return values


def _first(attributes: Mapping[str, Any], keys: tuple[str, ...], used: set[str]) -> Any:
    # As _mapped, for the few keys of the resource.
    for key in keys:
        value = attributes.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            used.add(key)
            return value
    return None


class _ResourceParts(NamedTuple):
    service_name: str
    environment: Any
    extra: dict[str, Any]  # the attributes no column takes, kept under attributes["resource"]


_last_resource = threading.local()


def _resource_parts(resource: dict[str, Any]) -> _ResourceParts:
    """What a span takes from its resource. The decoders give the spans of one resource entry
    one dict, never changed after: the last one's parts are reused (per thread: requests are
    decoded in threads)."""
    last = getattr(_last_resource, "parts", None)
    if last is not None and last[0] is resource:
        return cast(_ResourceParts, last[1])
    used: set[str] = set()
    found = {column: _first(resource, keys, used) for column, keys in RESOURCE_ATTRIBUTES.items()}
    extra = {key: value for key, value in resource.items() if key not in used}
    parts = _ResourceParts(service_name_of(resource), found["environment"], extra)
    _last_resource.parts = (resource, parts)  # holding `resource` keeps its id from being reused
    return parts


def _indexed_messages(attributes: Mapping[str, Any], prefix: str, used: set[str]) -> str | None:
    """OpenLLMetry's `gen_ai.prompt.0.role` / `gen_ai.prompt.0.content` style, as a JSON list."""
    messages: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if key.startswith(prefix):
            index, _, leaf = key[len(prefix) :].partition(".")
            if index.isascii() and index.isdigit() and leaf:  # int() refuses "²", which isdigit() accepts
                messages.setdefault(int(index), {})[leaf] = value
                used.add(key)
    if not messages:
        return None
    return json.dumps([messages[i] for i in sorted(messages)], ensure_ascii=False, default=str)


def _tag_list(value: Any) -> list[Any]:
    """Tags as a list: an array as sent; a string holding a JSON array, or tags separated by
    commas (Langfuse accepts both), split; any other string is one tag."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    if "," in text:
        return [tag.strip() for tag in text.split(",") if tag.strip()]
    return [text] if text else []


def _invoked_model(attributes: Mapping[str, Any]) -> str | None:
    """The model asked for, from OpenInference's `llm.invocation_parameters` (JSON): its failed
    calls carry no other model. The attribute itself is kept."""
    raw = attributes.get("llm.invocation_parameters")
    if not isinstance(raw, str) or '"model"' not in raw:
        return None
    try:
        parameters = json.loads(raw)
    except ValueError:
        return None
    model = parameters.get("model") if isinstance(parameters, dict) else None
    return model if isinstance(model, str) and model.strip() else None


# The columns of a usage the provider reported (and its price); see _estimated_usage.
_USAGE_COLUMNS = frozenset({"input_tokens", "output_tokens", "total_tokens", "cost_usd"})


def _estimated_usage(span: OtlpSpan) -> bool:
    """Whether the span's usage is OpenLIT's estimate rather than what the provider reported.

    OpenLIT's OpenAI instrumentation counts tokens itself (a characters rule) and prices them when
    a streamed answer carried no usage (no `stream_options.include_usage`), and only then leaves out
    the cache token attributes it otherwise always sets from the answer's usage
    (openlit/instrumentation/openai/utils.py). The provider billed something else: the estimate and
    its cost stay in `attributes`, the columns stay empty, and the call counts as unpriced.
    """
    attributes = span.attributes
    return (
        (span.scope or "").startswith("openlit.instrumentation.openai")
        and attributes.get("gen_ai.request.stream") is True
        and "gen_ai.usage.cache_read.input_tokens" not in attributes
    )


def _kind(raw: Any, model: str | None) -> SpanKind:
    if isinstance(raw, str) and raw.lower() in KIND_VALUES:
        return KIND_VALUES[raw.lower()]
    return "llm" if model else "other"


def _dropper(attributes: Mapping[str, Any], used: set[str], report: IngestReport) -> Callable[[str, str], None]:
    def drop(column: str, detail: str) -> None:
        keys = SPAN_ATTRIBUTES[column]
        key = next((key for key in keys if key in used and key in attributes), keys[0])
        report.drop(key, "invalid_value", detail)

    return drop


def to_span_record(span: OtlpSpan, report: IngestReport) -> SpanRecord:
    """Map one OTLP span; raises RejectedRecord with the reason when it cannot be stored.

    A mapped value that is unusable (a token count that is not a number) is dropped, with its
    attribute, and noted in `report`; the span is stored without it.
    """
    if len(span.trace_id) != 32:
        raise RejectedRecord("invalid_id", "traceId must be 16 non-zero bytes")
    if len(span.span_id) != 16:
        raise RejectedRecord("invalid_id", "spanId must be 8 non-zero bytes")
    if span.parent_span_id is not None and len(span.parent_span_id) != 16:
        raise RejectedRecord("invalid_id", "parentSpanId must be 8 bytes")
    check_time(span.start_ns, "startTimeUnixNano")
    check_time(span.end_ns, "endTimeUnixNano")
    if span.end_ns < span.start_ns:
        raise RejectedRecord("invalid_timestamp", "endTimeUnixNano is before startTimeUnixNano")
    attributes, used = span.attributes, set[str]()
    skipped = _USAGE_COLUMNS if _estimated_usage(span) else frozenset()
    values = _mapped(attributes, skipped, used)
    resource = _resource_parts(span.resource)
    for column, prefix in OPENLLMETRY_INDEXED.items():
        if values[column] is None:
            values[column] = _indexed_messages(attributes, prefix, used)
    drop = _dropper(attributes, used, report)
    tokens = {column: as_int(values[column], column, drop) for column in _INTEGER_COLUMNS}
    if tokens["total_tokens"] is None and (tokens["input_tokens"] is not None or tokens["output_tokens"] is not None):
        tokens["total_tokens"] = (tokens["input_tokens"] or 0) + (tokens["output_tokens"] or 0)
    finish = values["finish_reason"]
    if isinstance(finish, list):
        finish = finish[0] if finish else None
    tags = _tag_list(values["tags"])
    first_token = as_float(values["time_to_first_token_ms"], "time_to_first_token_ms", drop)
    if values["time_to_first_token_ms"] is None and (span.events or not FIRST_TOKEN_KEYS.isdisjoint(attributes)):
        first_token = first_token_ms(attributes, span.events, span.start_ns, used)
    kept = {key: value for key, value in attributes.items() if key not in used}
    if resource.extra:
        kept["resource"] = dict(resource.extra)
    if span.scope:
        kept["otel.scope.name"] = span.scope
    if span.events:
        kept["events"] = stored_events(span.events)
    if values["model"] is None:
        values["model"] = _invoked_model(attributes)
    model = None if values["model"] is None else str(values["model"])[:200]
    start, end = timestamp_of(span.start_ns), timestamp_of(span.end_ns)
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        service_name=resource.service_name,
        name=(span.name or "unnamed")[:MAX_NAME],
        kind=_kind(values["kind"], model),
        start_time=start,
        end_time=end,
        duration_ms=(span.end_ns - span.start_ns) / 1e6,
        provider=None if values["provider"] is None else str(values["provider"]).lower()[:100],
        model=model,
        cost_usd=as_float(values["cost_usd"], "cost_usd", drop),
        time_to_first_token_ms=first_token,
        status=_STATUSES.get(span.status_code, "unset"),
        status_message=span.status_message,
        finish_reason=None if finish is None else str(finish)[:64],
        user_id=None if values["user_id"] is None else str(values["user_id"])[:200],
        session_id=None if values["session_id"] is None else str(values["session_id"])[:200],
        environment=str(values["environment"] or resource.environment or "")[:100] or None,
        tags=[str(tag)[:200] for tag in tags],
        input=as_text(values["input"]),
        output=as_text(values["output"]),
        attributes=kept,
        input_tokens=tokens["input_tokens"],
        output_tokens=tokens["output_tokens"],
        total_tokens=tokens["total_tokens"],
        cache_read_input_tokens=tokens["cache_read_input_tokens"],
        cache_creation_input_tokens=tokens["cache_creation_input_tokens"],
        reasoning_output_tokens=tokens["reasoning_output_tokens"],
    )


_STATUSES: dict[int, SpanStatus] = {1: "ok", 2: "error"}  # OTLP status codes
