"""Replay a committed capture into the app, and compute from the fake server's log what the app
should answer about it.

The expectations are the fake server's: every exchange it logged is one model call, under the
model that was asked for (the catalogue's name; the answer's dated snapshot is the same model),
failed or not; tokens are the usage the answer carried (none for a stream without usage), priced
at the catalogue prices the app serves over REST; latency is the server's time from request to
the end of its answer, time to first token the server's time to its first byte.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.instrumentations.fake_openai import Exchange

CAPTURES = Path(__file__).resolve().parent / "captures"
NAMES = (
    "openinference",
    "openinference-langchain",
    "otel-genai",
    "otel-genai-latest",
    "traceloop",
    "openlit",
)
PROVIDER = "openai"
# Calls a package never makes a span for, so no app can see them (FINDINGS.md says why).
UNTRACED_ENDPOINTS: dict[str, set[str]] = {"openinference-langchain": {"embeddings"}}
# Usage details a package never sends: no app can price them, so the expectation goes without
# them (cached prompt tokens then cost the full input price; reasoning tokens are output tokens).
UNREPORTED_DETAILS: dict[str, tuple[str, ...]] = {
    "otel-genai": ("cached_tokens", "reasoning_tokens"),
    "otel-genai-latest": ("cached_tokens", "reasoning_tokens"),
}
_TIME_KEYS = ("startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "observedTimeUnixNano")


@dataclass(frozen=True)
class Capture:
    name: str
    document: dict[str, Any]
    exchanges: list[Exchange]

    @property
    def user_id(self) -> str:
        return str(self.document["user_id"])

    @property
    def session_id(self) -> str:
        return str(self.document["session_id"])

    def spans(self) -> list[dict[str, Any]]:
        return [
            span
            for request in self.document["exports"]
            if request["signal"] == "traces"
            for resource in request["body"].get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
            for span in scope.get("spans", [])
        ]

    def first_ns(self) -> int:
        return min(int(span["startTimeUnixNano"]) for span in self.spans())

    def traced_exchanges(self) -> list[Exchange]:
        """The exchanges the package made a span for, less the usage details it never sends."""
        hidden = UNTRACED_ENDPOINTS.get(self.name, set())
        unreported = dict.fromkeys(UNREPORTED_DETAILS.get(self.name, ()), None)
        return [
            dataclasses.replace(exchange, **unreported) if exchange.usage_sent else exchange
            for exchange in self.exchanges
            if exchange.endpoint not in hidden
        ]


def load(name: str) -> Capture:
    document = json.loads((CAPTURES / f"{name}.json").read_text())
    server = json.loads((CAPTURES / f"{name}.server.json").read_text())
    return Capture(name, document, [Exchange.from_json(item) for item in server["exchanges"]])


def _shift(node: Any, offset: int) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                str(int(value) + offset) if key in _TIME_KEYS and value not in (None, "0", 0) else _shift(value, offset)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_shift(item, offset) for item in node]
    return node


def exports_at(capture: Capture, start_ns: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(path, OTLP JSON body) of every export, in the order sent, moved so the first span starts
    at `start_ns` (default: a minute ago), so that the app's recent windows and rollups see them."""
    start = start_ns if start_ns is not None else time.time_ns() - 60 * 1_000_000_000
    offset = start - capture.first_ns()
    return [
        (f"/v1/{request['signal']}", _shift(copy.deepcopy(request["body"]), offset))
        for request in capture.document["exports"]
        if request["signal"] in ("traces", "logs")
    ]


# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Prices:
    """USD per million tokens, as `GET /api/v1/models/{provider}/{name}` answers them."""

    input: float
    output: float
    cache_read: float | None = None
    reasoning: float | None = None

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> Prices:
        pricing = model["pricing"]
        return cls(
            input=pricing["input_per_mtok"],
            output=pricing["output_per_mtok"],
            cache_read=pricing["cache_read_per_mtok"],
            reasoning=pricing["reasoning_per_mtok"],
        )


def exchange_cost(exchange: Exchange, prices: Prices) -> float:
    if not exchange.usage_sent:
        return 0.0
    cached = exchange.cached_tokens or 0
    reasoning = exchange.reasoning_tokens or 0
    prompt, completion = exchange.prompt_tokens or 0, exchange.completion_tokens or 0
    cache_price = prices.input if prices.cache_read is None else prices.cache_read
    reasoning_price = prices.output if prices.reasoning is None else prices.reasoning
    return (
        (prompt - cached) * prices.input
        + cached * cache_price
        + (completion - reasoning) * prices.output
        + reasoning * reasoning_price
    ) / 1_000_000


@dataclass
class ModelExpectation:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    durations_ms: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests

    @property
    def p50_latency_ms(self) -> float:
        return float(statistics.median(self.durations_ms))


def expected_by_model(exchanges: list[Exchange], prices: dict[str, Prices]) -> dict[str, ModelExpectation]:
    models: dict[str, ModelExpectation] = defaultdict(ModelExpectation)
    for exchange in exchanges:
        # Grouped under the canonical model: the name asked for and its dated snapshot are one.
        model = models[f"{PROVIDER}/{exchange.model_requested}"]
        model.requests += 1
        model.errors += exchange.status >= 400
        model.input_tokens += exchange.prompt_tokens or 0
        model.output_tokens += exchange.completion_tokens or 0
        model.cost += exchange_cost(exchange, prices[exchange.model_requested])
        model.durations_ms.append(exchange.duration_ms)
    return dict(models)


def expected_totals(exchanges: list[Exchange], prices: dict[str, Prices]) -> dict[str, float]:
    models = expected_by_model(exchanges, prices).values()
    return {
        "requests": sum(m.requests for m in models),
        "errors": sum(m.errors for m in models),
        "input_tokens": sum(m.input_tokens for m in models),
        "output_tokens": sum(m.output_tokens for m in models),
        "cost": sum(m.cost for m in models),
    }
