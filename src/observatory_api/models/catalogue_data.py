"""A starter catalogue of well-known models and their prices, as `catalogue.toml` beside this module lists them.

Prices are the providers' public list prices as of 2025, in USD per million tokens, for
standard (non-batch, short-prompt) usage. They are data, not code: revision 0002 wrote them into
`models`, revision 0004 moved them into `model_prices` (effective from 1970), and later changes
are recorded with `observatory-api models set-price`. Keys are the columns of `models` and the
price columns of `model_prices`;
`reasoning_price_per_mtok` None means reasoning tokens are billed as output tokens, and a None
cache price means cached tokens are billed like ordinary input.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def _model(
    provider: str,
    name: str,
    display_name: str,
    context_window: int | None,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_write: float | None = None,
) -> dict[str, Any]:
    return {
        "id": f"{provider}/{name}",
        "provider": provider,
        "name": name,
        "display_name": display_name,
        "context_window": context_window,
        "input_price_per_mtok": input,
        "output_price_per_mtok": output,
        "cache_read_price_per_mtok": cache_read,
        "cache_write_price_per_mtok": cache_write,
        # No model listed prices reasoning tokens apart from output tokens.
        "reasoning_price_per_mtok": None,
    }


def _load() -> tuple[dict[str, Any], ...]:
    rows = tomllib.loads((Path(__file__).parent / "catalogue.toml").read_text(encoding="utf-8"))
    return tuple(_model(provider, *row) for provider, models in rows.items() for row in models)


STARTER_MODELS: tuple[dict[str, Any], ...] = _load()
