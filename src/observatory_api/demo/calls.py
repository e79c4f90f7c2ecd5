"""Simulated model calls: which model, how many tokens, how long, what it cost, how it failed."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from observatory_api.models.catalogue_data import STARTER_MODELS
from observatory_api.models.pricing import ModelPrices, price_usage

CATALOGUE: dict[str, dict[str, Any]] = {entry["id"]: entry for entry in STARTER_MODELS}

# How often each chat model is picked: gpt-4o-mini and claude-sonnet-4 dominate, as they do in
# most production traffic.
CHAT_MODEL_WEIGHTS: dict[str, float] = {
    "openai/gpt-4o-mini": 22,
    "anthropic/claude-sonnet-4": 16,
    "openai/gpt-4o": 8,
    "openai/gpt-4.1-mini": 6,
    "openai/gpt-4.1": 5,
    "openai/o4-mini": 3,
    "openai/o3": 1.5,
    "anthropic/claude-3-5-haiku": 6,
    "anthropic/claude-3-7-sonnet": 3,
    "anthropic/claude-opus-4": 1.5,
    "google/gemini-2.5-flash": 6,
    "google/gemini-2.0-flash": 3,
    "google/gemini-2.5-pro": 2.5,
    "mistral/mistral-small": 2.5,
    "mistral/mistral-large": 1.5,
    "mistral/codestral": 1,
    "cohere/command-r": 1.5,
    "cohere/command-r-plus": 1,
    "groq/llama-3.3-70b-versatile": 3,
    "groq/llama-3.1-8b-instant": 1.5,
    "deepseek/deepseek-chat": 3,
    "deepseek/deepseek-reasoner": 1.5,
}
EMBEDDING_MODEL_WEIGHTS: dict[str, float] = {
    "openai/text-embedding-3-small": 6,
    "openai/text-embedding-3-large": 2,
    "google/text-embedding-004": 1,
    "mistral/mistral-embed": 1,
    "cohere/embed-english-v3.0": 1,
}
# Time to first token (ms) and generation speed (tokens/s): rough public benchmark figures.
_SPEED: dict[str, tuple[float, float]] = {
    "openai/gpt-4o-mini": (350, 85),
    "openai/gpt-4o": (450, 70),
    "openai/gpt-4.1": (500, 75),
    "openai/gpt-4.1-mini": (380, 90),
    "openai/o3": (900, 60),
    "openai/o4-mini": (700, 110),
    "anthropic/claude-sonnet-4": (900, 60),
    "anthropic/claude-opus-4": (1500, 35),
    "anthropic/claude-3-7-sonnet": (900, 60),
    "anthropic/claude-3-5-haiku": (600, 80),
    "google/gemini-2.5-pro": (900, 90),
    "google/gemini-2.5-flash": (450, 180),
    "google/gemini-2.0-flash": (350, 200),
    "mistral/mistral-large": (500, 45),
    "mistral/mistral-small": (300, 120),
    "mistral/codestral": (300, 110),
    "cohere/command-r-plus": (500, 50),
    "cohere/command-r": (350, 90),
    "groq/llama-3.3-70b-versatile": (150, 280),
    "groq/llama-3.1-8b-instant": (100, 700),
    "deepseek/deepseek-chat": (900, 30),
    "deepseek/deepseek-reasoner": (1200, 30),
}
REASONING_MODELS = frozenset(
    {
        "openai/o3",
        "openai/o4-mini",
        "google/gemini-2.5-pro",
        "google/gemini-2.5-flash",
        "deepseek/deepseek-reasoner",
    }
)
_CACHING_PROVIDERS = frozenset({"openai", "anthropic", "google", "deepseek"})

# (message, weight, HTTP status, latency range in ms) of failed calls.
_FAILURES: tuple[tuple[str, float, int, tuple[float, float]], ...] = (
    ("RateLimitError: 429 Too Many Requests: rate limit reached for requests per minute", 45, 429, (60, 400)),
    ("APITimeoutError: request timed out after 60.0 seconds", 12, 504, (60_000, 60_050)),
    ("InternalServerError: 500 the server had an error while processing your request", 15, 500, (300, 3000)),
    ("APIConnectionError: connection reset by peer", 10, 502, (50, 2000)),
    ("OverloadedError: 529 the model is overloaded, try again later", 10, 529, (200, 1500)),
    ("BadRequestError: 400 context_length_exceeded: prompt is too long", 8, 400, (80, 300)),
)
LLM_FAILURE_RATE = 0.035


@dataclass(slots=True)
class Call:
    """One simulated model call: the span fields it fills, and how long it took."""

    model_id: str
    duration_ms: float
    fields: dict[str, Any]
    failure: str | None = None
    http_status: int = 200


def pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def lognormal_int(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    """A right-skewed count: most values near `median`, a long tail, clamped to [low, high]."""
    return min(max(round(rng.lognormvariate(math.log(median), sigma)), low), high)


def llm_call(rng: random.Random, model_id: str, *, input_median: float, output_median: float, max_tokens: int) -> Call:
    entry = CATALOGUE[model_id]
    if rng.random() < LLM_FAILURE_RATE:
        return _failed_call(rng, model_id)
    context = entry["context_window"] or 128_000
    input_tokens = lognormal_int(rng, input_median, 0.8, 8, context // 2)
    visible = lognormal_int(rng, output_median, 0.9, 1, max_tokens)
    finish_reason = "length" if visible >= max_tokens or rng.random() < 0.02 else "stop"
    reasoning = lognormal_int(rng, 700, 1.0, 16, 20_000) if model_id in REASONING_MODELS else None
    output_tokens = visible + (reasoning or 0)
    cache_read, cache_write = _cache_usage(rng, entry["provider"], input_tokens)
    ttft_base, speed = _SPEED[model_id]
    noise = rng.lognormvariate(0, 0.35)
    # The first visible token waits for the prompt and for any hidden reasoning.
    ttft = (ttft_base + input_tokens * 0.02 + (reasoning or 0) / speed * 1000) * noise
    duration = ttft + visible / (speed / rng.lognormvariate(0, 0.2)) * 1000
    cost = price_usage(
        ModelPrices.from_row(entry),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_input_tokens=cache_read or 0,
        cache_creation_input_tokens=cache_write or 0,
        reasoning_output_tokens=reasoning or 0,
    )
    fields = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
        "reasoning_output_tokens": reasoning,
        "cost_usd": cost,
        "time_to_first_token_ms": round(ttft, 3),
        "finish_reason": finish_reason,
    }
    return Call(model_id, round(duration, 3), fields)


def embedding_call(rng: random.Random, model_id: str) -> Call:
    entry = CATALOGUE[model_id]
    tokens = lognormal_int(rng, 40, 0.7, 2, entry["context_window"] or 8191)
    cost = price_usage(ModelPrices.from_row(entry), input_tokens=tokens, output_tokens=0)
    fields = {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens, "cost_usd": cost}
    return Call(model_id, round(rng.uniform(40, 250) * rng.lognormvariate(0, 0.3), 3), fields)


def _cache_usage(rng: random.Random, provider: str, input_tokens: int) -> tuple[int | None, int | None]:
    # Providers that report caching report 0 on a miss; the others report nothing.
    if provider not in _CACHING_PROVIDERS:
        return None, None
    if input_tokens >= 1024 and rng.random() < 0.35:
        return int(input_tokens * rng.uniform(0.5, 0.95)), 0
    if provider == "anthropic" and input_tokens >= 1024 and rng.random() < 0.15:
        return 0, int(input_tokens * rng.uniform(0.3, 0.8))
    return 0, 0


def _failed_call(rng: random.Random, model_id: str) -> Call:
    index = rng.choices(range(len(_FAILURES)), weights=[failure[1] for failure in _FAILURES])[0]
    message, _weight, http_status, (low, high) = _FAILURES[index]
    return Call(model_id, round(rng.uniform(low, high), 3), {"finish_reason": None}, message, http_status)
