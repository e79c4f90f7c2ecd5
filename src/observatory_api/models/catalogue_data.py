"""A starter catalogue of well-known models and their prices.

Prices are the providers' public list prices as of 2025, in USD per million tokens, for
standard (non-batch, short-prompt) usage. They are data, not code: revision 0002 wrote them into
`models`, revision 0004 moved them into `model_prices` (effective from 1970), and later changes
are recorded with `observatory-api models set-price`. Keys are the columns of `models` and the
price columns of `model_prices`;
`reasoning_price_per_mtok` None means reasoning tokens are billed as output tokens, and a None
cache price means cached tokens are billed like ordinary input.
"""

from __future__ import annotations

from typing import Any


def _model(
    provider: str,
    name: str,
    display_name: str,
    *,
    context_window: int | None,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_write: float | None = None,
    reasoning: float | None = None,
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
        "reasoning_price_per_mtok": reasoning,
    }


# OpenAI bills cache writes as ordinary input; embeddings have no output tokens.
_OPENAI = (
    _model("openai", "gpt-4o", "GPT-4o", context_window=128_000, input=2.50, output=10.00, cache_read=1.25),
    _model(
        "openai",
        "gpt-4o-mini",
        "GPT-4o mini",
        context_window=128_000,
        input=0.15,
        output=0.60,
        cache_read=0.075,
    ),
    _model("openai", "gpt-4.1", "GPT-4.1", context_window=1_047_576, input=2.00, output=8.00, cache_read=0.50),
    _model(
        "openai",
        "gpt-4.1-mini",
        "GPT-4.1 mini",
        context_window=1_047_576,
        input=0.40,
        output=1.60,
        cache_read=0.10,
    ),
    _model(
        "openai",
        "gpt-4.1-nano",
        "GPT-4.1 nano",
        context_window=1_047_576,
        input=0.10,
        output=0.40,
        cache_read=0.025,
    ),
    _model("openai", "o3", "o3", context_window=200_000, input=2.00, output=8.00, cache_read=0.50),
    _model("openai", "o4-mini", "o4-mini", context_window=200_000, input=1.10, output=4.40, cache_read=0.275),
    _model(
        "openai",
        "text-embedding-3-small",
        "Text Embedding 3 Small",
        context_window=8_191,
        input=0.02,
        output=0.0,
    ),
    _model(
        "openai",
        "text-embedding-3-large",
        "Text Embedding 3 Large",
        context_window=8_191,
        input=0.13,
        output=0.0,
    ),
)

# Anthropic: 5-minute cache writes cost 1.25x input, cache reads 0.1x.
_ANTHROPIC = (
    _model(
        "anthropic",
        "claude-opus-4",
        "Claude Opus 4",
        context_window=200_000,
        input=15.00,
        output=75.00,
        cache_read=1.50,
        cache_write=18.75,
    ),
    _model(
        "anthropic",
        "claude-sonnet-4",
        "Claude Sonnet 4",
        context_window=200_000,
        input=3.00,
        output=15.00,
        cache_read=0.30,
        cache_write=3.75,
    ),
    _model(
        "anthropic",
        "claude-3-7-sonnet",
        "Claude 3.7 Sonnet",
        context_window=200_000,
        input=3.00,
        output=15.00,
        cache_read=0.30,
        cache_write=3.75,
    ),
    _model(
        "anthropic",
        "claude-3-5-haiku",
        "Claude 3.5 Haiku",
        context_window=200_000,
        input=0.80,
        output=4.00,
        cache_read=0.08,
        cache_write=1.00,
    ),
)

# Google: prices for prompts up to 200k tokens; context-cache storage is billed separately.
_GOOGLE = (
    _model(
        "google",
        "gemini-2.5-pro",
        "Gemini 2.5 Pro",
        context_window=1_048_576,
        input=1.25,
        output=10.00,
        cache_read=0.31,
    ),
    _model(
        "google",
        "gemini-2.5-flash",
        "Gemini 2.5 Flash",
        context_window=1_048_576,
        input=0.30,
        output=2.50,
        cache_read=0.075,
    ),
    _model(
        "google",
        "gemini-2.0-flash",
        "Gemini 2.0 Flash",
        context_window=1_048_576,
        input=0.10,
        output=0.40,
        cache_read=0.025,
    ),
    # Free of charge on the Gemini API; Vertex AI bills it per character instead.
    _model("google", "text-embedding-004", "Text Embedding 004", context_window=2_048, input=0.0, output=0.0),
)

_MISTRAL = (
    _model("mistral", "mistral-large", "Mistral Large", context_window=131_072, input=2.00, output=6.00),
    _model("mistral", "mistral-medium", "Mistral Medium 3", context_window=131_072, input=0.40, output=2.00),
    _model("mistral", "mistral-small", "Mistral Small", context_window=131_072, input=0.10, output=0.30),
    _model("mistral", "codestral", "Codestral", context_window=256_000, input=0.30, output=0.90),
    _model("mistral", "mistral-embed", "Mistral Embed", context_window=8_192, input=0.10, output=0.0),
)

_COHERE = (
    _model("cohere", "command-a", "Command A", context_window=256_000, input=2.50, output=10.00),
    _model("cohere", "command-r-plus", "Command R+", context_window=128_000, input=2.50, output=10.00),
    _model("cohere", "command-r", "Command R", context_window=128_000, input=0.15, output=0.60),
    _model("cohere", "embed-english-v3.0", "Embed English v3", context_window=512, input=0.10, output=0.0),
)

# Meta's open-weight Llama models, as served (and priced) by Groq.
_GROQ = (
    _model(
        "groq",
        "llama-3.3-70b-versatile",
        "Llama 3.3 70B (Groq)",
        context_window=131_072,
        input=0.59,
        output=0.79,
    ),
    _model("groq", "llama-3.1-8b-instant", "Llama 3.1 8B (Groq)", context_window=131_072, input=0.05, output=0.08),
)

# DeepSeek's standard-hours prices; a cache hit is the cache-read price, a miss is ordinary input.
_DEEPSEEK = (
    _model(
        "deepseek",
        "deepseek-chat",
        "DeepSeek V3",
        context_window=65_536,
        input=0.27,
        output=1.10,
        cache_read=0.07,
    ),
    _model(
        "deepseek",
        "deepseek-reasoner",
        "DeepSeek R1",
        context_window=65_536,
        input=0.55,
        output=2.19,
        cache_read=0.14,
    ),
)

STARTER_MODELS: tuple[dict[str, Any], ...] = (
    *_OPENAI,
    *_ANTHROPIC,
    *_GOOGLE,
    *_MISTRAL,
    *_COHERE,
    *_GROQ,
    *_DEEPSEEK,
)
