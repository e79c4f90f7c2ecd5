"""Model catalogue and usage shapes returned by the API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

UsageInterval = Literal["minute", "5m", "15m", "hour", "day", "week"]
INTERVAL_SECONDS: dict[str, int] = {
    "minute": 60,
    "5m": 300,
    "15m": 900,
    "hour": 3600,
    "day": 86_400,
    "week": 604_800,
}


class ModelPricing(msgspec.Struct, kw_only=True):
    """List prices in USD per million tokens; null cache or reasoning prices fall back to input or output."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None
    cache_write_per_mtok: float | None
    reasoning_per_mtok: float | None


class ModelInfo(msgspec.Struct, kw_only=True):
    id: str
    provider: str
    name: str
    display_name: str
    context_window: int | None
    pricing: ModelPricing


class PriceHistoryEntry(ModelPricing, kw_only=True):
    """The prices in effect from `effective_from` until `effective_to` (null: still in effect)."""

    effective_from: datetime
    effective_to: datetime | None


class ModelDetail(ModelInfo, kw_only=True):
    first_seen: datetime | None
    last_seen: datetime | None
    # The model names as sent seen under this model: dated snapshots (gpt-4o-mini-2024-07-18),
    # the name asked for, prefixed names (openai/gpt-4o, models/gemini-1.5-pro).
    snapshots: list[str] = msgspec.field(default_factory=list)
    # Oldest first; `pricing` is the period in effect now.
    price_history: list[PriceHistoryEntry] = msgspec.field(default_factory=list)


class ModelList(msgspec.Struct):
    data: list[ModelInfo]


class LatencyPercentiles(msgspec.Struct):
    p50: float | None
    p95: float | None
    p99: float | None


class UsagePoint(msgspec.Struct, kw_only=True):
    time: datetime
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class UsageBreakdown(msgspec.Struct, kw_only=True):
    """Usage of one environment or one user (`key`; null for spans without one)."""

    key: str | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


ComparisonPricing = Literal["price_at_span_time"]


class UsageComparison(msgspec.Struct, kw_only=True):
    """The range's tokens priced at another model's list prices (`compare_with`).

    `pricing` says how: `price_at_span_time`, each span's tokens at the prices each model had
    when the span started (the first known price for spans before a model's first price)."""

    model_id: str
    cost_usd: float
    # The same tokens at this model's list prices: the like-for-like baseline.
    current_model_list_cost_usd: float
    difference_usd: float
    ratio: float | None
    pricing: ComparisonPricing = "price_at_span_time"


class ModelUsage(msgspec.Struct, kw_only=True):
    model_id: str
    from_: datetime = msgspec.field(name="from")
    to: datetime
    interval: UsageInterval | None
    requests: int
    errors: int
    error_rate: float | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float  # of the priced calls
    # Successful calls without a cost (no price known, or no usage reported): not in cost_usd.
    unpriced_calls: int = 0
    latency_ms: LatencyPercentiles
    series: list[UsagePoint] | None
    by_environment: list[UsageBreakdown] = msgspec.field(default_factory=list)
    # The users with the highest cost, at most `top_users`.
    top_users: list[UsageBreakdown] = msgspec.field(default_factory=list)
    comparison: UsageComparison | None = None
