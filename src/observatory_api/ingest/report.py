"""What one OTLP request lost or had changed, told three ways: `partial_success`, a warning, counters.

Nothing is dropped silently: a rejected record, a dropped attribute and a string that had NUL
characters removed are noted here while the request is decoded and mapped; the service then
answers with a `partial_success` message, counts them by reason (bounded labels) and logs one
warning per request (at most one per service and signal every `WARNING_INTERVAL_SECONDS`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from observatory_api.ingest.limits import RejectReason
from observatory_api.observability import metrics

logger = logging.getLogger("observatory_api.ingest")

Signal = Literal["spans", "logs", "metrics"]
# The reasons are the label values of the counters: a fixed set, never data from the request.
DropReason = Literal["invalid_value", "too_deep", "too_many_values", "undecodable"]
RefusalReason = Literal[
    "too_large",
    "too_many_resources",
    "too_many_scopes",
    "too_many_records",
    "too_many_fields",
    "malformed",
    "cancelled",
]
_EXAMPLES = 5
_KEY_CHARS = 100
_MAX_SERVICES = 5
WARNING_INTERVAL_SECONDS = 10.0
UNKNOWN_SERVICE = "unknown_service"


def service_name_of(resource: dict[str, Any]) -> str:
    """The stored service name of a resource (the same text the span and log rows get)."""
    name = resource.get("service.name")
    if name is None or (isinstance(name, str) and not name.strip()):
        return UNKNOWN_SERVICE
    return str(name)[:200]


def strip_nul(text: str) -> str:
    return text.replace("\x00", "")


class IngestReport:
    """Filled by the decoder and the mapping of one request (in one thread, in order)."""

    __slots__ = (
        "_drop_examples",
        "_drops",
        "_drops_listed",
        "_pending",
        "_reject_examples",
        "_rejections",
        "_service",
        "_services",
        "nul_strings",
        "rejected",
        "signal",
    )

    def __init__(self, signal: Signal) -> None:
        self.signal: Signal = signal
        self.rejected = 0
        self._rejections: Counter[str] = Counter()
        self._reject_examples: list[str] = []
        self._drops: Counter[str] = Counter()
        self._drop_examples: list[str] = []
        self._drops_listed = 0  # how many drops the examples stand for
        self.nul_strings = 0
        self._services: set[str] = set()
        self._service: str | None = None
        self._pending = False  # something was noted before the current resource's service was known

    # --------------------------------------------------------------- noting

    def enter_resource(self) -> None:
        self._service = None

    def set_service(self, name: str) -> None:
        self._service = name
        if self._pending:
            self._pending = False
            self._add_service(name)

    def _noticed(self) -> None:
        if self._service is None:
            self._pending = True
        else:
            self._add_service(self._service)

    def _add_service(self, name: str) -> None:
        if len(self._services) < _MAX_SERVICES:
            self._services.add(name)

    def strip(self, text: str) -> str:
        """`text` without its NUL characters (PostgreSQL text and jsonb cannot hold U+0000)."""
        self.nul_strings += 1
        self._noticed()
        return strip_nul(text)

    def reject(self, reason: RejectReason, detail: str) -> None:
        self.rejected += 1
        self._rejections[reason] += 1
        if len(self._reject_examples) < _EXAMPLES and detail not in self._reject_examples:
            self._reject_examples.append(detail)
        self._noticed()

    def drop(self, key: Any, reason: DropReason, detail: str, *, count: int = 1) -> None:
        self._drops[reason] += count
        if len(self._drop_examples) < _EXAMPLES:
            name = key if isinstance(key, str) else f"a {type(key).__name__} key"
            self._drop_examples.append(f"{name[:_KEY_CHARS]} ({detail})")
            self._drops_listed += count
        self._noticed()

    # --------------------------------------------------------------- telling

    @property
    def dropped(self) -> int:
        return sum(self._drops.values())

    def error_message(self) -> str | None:
        """The `partial_success.error_message`, or None when nothing was rejected or changed."""
        parts = []
        noun = "span" if self.signal == "spans" else "log record"
        if self.rejected:
            listed = _listed(self._reject_examples, self.rejected - len(self._reject_examples))
            parts.append(f"{_count(self.rejected, noun)} rejected: {listed}")
        if self._drops:
            listed = _listed(self._drop_examples, self.dropped - self._drops_listed)
            parts.append(f"{_count(self.dropped, 'attribute')} dropped: {listed}")
        if self.nul_strings:
            parts.append(f"NUL characters removed from {_count(self.nul_strings, 'string')}")
        return "; ".join(parts) or None

    def count(self) -> None:
        """Adds this request's rejections, drops and stripped strings to the Prometheus counters."""
        for reason, n in self._rejections.items():
            metrics.ingest_records_rejected_total.labels(signal=self.signal, reason=reason).inc(n)
        for reason, n in self._drops.items():
            metrics.ingest_attributes_dropped_total.labels(signal=self.signal, reason=reason).inc(n)
        if self.nul_strings:
            metrics.ingest_nul_strings_stripped_total.labels(signal=self.signal).inc(self.nul_strings)

    def warning_fields(self) -> dict[str, Any] | None:
        if not (self.rejected or self._drops or self.nul_strings):
            return None
        return {
            "signal": self.signal,
            "services": sorted(self._services) or [UNKNOWN_SERVICE],
            "rejected": dict(self._rejections),
            "attributes_dropped": dict(self._drops),
            "nul_strings_stripped": self.nul_strings,
        }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _listed(examples: list[str], more: int) -> str:
    return ", ".join(examples) + (f" and {more:,} more" if more > 0 else "")


def count_refusal(signal: Signal, reason: RefusalReason) -> None:
    metrics.ingest_requests_refused_total.labels(signal=signal, reason=reason).inc()


class IngestWarnings:
    """One warning line per request with losses, at most one per (signal, service) per interval.

    Lines held back are counted and the next line says how many: an exporter that sends the
    same bad attribute in every batch costs one line per interval, not one per batch.
    """

    _MAX_KEYS = 10_000

    def __init__(
        self, interval_seconds: float = WARNING_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: Counter[tuple[str, str]] = Counter()

    def warn(self, report: IngestReport) -> bool:
        """Logs `report` unless a line for its signal and service went out within the interval."""
        fields = report.warning_fields()
        if fields is None:
            return False
        key = (report.signal, fields["services"][0])
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] += 1
            return False
        if len(self._last) >= self._MAX_KEYS:  # bounded memory: forget the oldest lines' times
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        fields["similar_requests_not_logged"] = self._held.pop(key, 0)
        logger.warning("OTLP %s stored with losses: %s", report.signal, report.error_message(), extra=fields)
        return True
