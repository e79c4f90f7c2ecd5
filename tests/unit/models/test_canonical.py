"""The canonical model of what instrumentations send, and genai-prices' prices on the fast path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from genai_prices import Usage

from observatory_api.core.canonical_models import canonical_model, normalise_provider
from observatory_api.models.price_data import genai_price


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("OpenAI", "gpt-4o-mini", "openai/gpt-4o-mini"),
        ("openai", "o4-mini-2025-04-16", "openai/o4-mini"),
        ("openai", "text-embedding-3-small", "openai/text-embedding-3-small"),
        ("openai", "openai/gpt-4o", "openai/gpt-4o"),
        (None, "openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        (None, "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("Anthropic", "claude-3-5-sonnet-20240620", "anthropic/claude-3-5-sonnet"),
        ("gcp.gemini", "models/gemini-1.5-pro", "google/gemini-1.5-pro"),
        ("gcp.vertex_ai", "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic/claude-3-5-sonnet"),
        ("aws.bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic/claude-3-5-sonnet"),
        ("azure.ai.openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("az.ai.inference", "gpt-4o", "openai/gpt-4o"),
        ("mistral_ai", "mistral-large-latest", "mistral/mistral-large"),
        ("x_ai", "grok-3", "x-ai/grok-3"),
        ("groq", "llama-3.1-8b-instant", "groq/llama-3.1-8b-instant"),
        ("deepseek", "deepseek-chat", "deepseek/deepseek-chat"),
        ("cohere", "command-r-plus", "cohere/command-r-plus"),
        # Unknown to genai-prices: dates folded, under the provider (or the prefix) named.
        ("ollama", "llama3.2:3b", "ollama/llama3.2:3b"),
        ("acme", "house-model-2025-01-31", "acme/house-model"),
        (None, "mycorp/my-model", "mycorp/my-model"),
    ],
)
def test_model_names_fold_to_one_canonical_model(provider: str | None, model: str, expected: str) -> None:
    assert canonical_model(provider, model).model_id == expected


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("mistral_ai", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("gcp.gemini", "gcp.gemini"),
        ("google", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("azure", "azure.ai.openai"),
        ("aws.bedrock", "aws.bedrock"),
        ("bedrock", "aws.bedrock"),
        ("xai", "x_ai"),
        ("ibm.watsonx.ai", "ibm.watsonx.ai"),
        ("  Some New Provider ", "some new provider"),
        ("", None),
        (None, None),
    ],
)
def test_providers_take_the_genai_semantic_conventions_spelling(sent: str | None, expected: str | None) -> None:
    assert normalise_provider(sent) == expected


def test_no_model_has_no_canonical_model() -> None:
    assert canonical_model("openai", None).model_id is None
    assert canonical_model("openai", "  ").model_id is None


@pytest.mark.parametrize(
    ("provider", "model", "tokens"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", (37, 16, 16)),
        ("openai", "o4-mini", (113, 79, 0)),
        ("anthropic", "claude-sonnet-4-5", (3_000, 10, 100)),
        ("anthropic", "claude-sonnet-4-5", (300_000, 10, 0)),  # past the 200k tier
        ("gcp.gemini", "gemini-1.5-pro", (250_000, 100, 0)),
        ("perplexity", "sonar", (100, 100, 0)),  # a price per request besides tokens
        ("x_ai", "grok-3", (100, 10, 5)),
    ],
)
def test_the_fast_path_prices_as_genai_prices_itself(provider: str, model: str, tokens: tuple[int, int, int]) -> None:
    canonical = canonical_model(provider, model)
    assert canonical.price_provider is not None and canonical.price_model is not None
    when = datetime(2026, 12, 1, tzinfo=UTC)
    prompt, completion, cached = tokens
    ours = genai_price(
        canonical.price_provider,
        canonical.price_model,
        when=when,
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_input_tokens=cached,
    )
    usage = Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)
    theirs = canonical.price_model.calc_price(usage, canonical.price_provider, genai_request_timestamp=when)
    assert ours == pytest.approx(float(theirs.total_price), rel=1e-12)


def test_every_catalogue_id_is_its_own_canonical_model() -> None:
    # Catalogue prices are looked up by canonical id: a starter model named otherwise would never price.
    from observatory_api.models.catalogue_data import STARTER_MODELS

    assert {m["id"]: canonical_model(m["provider"], m["name"]).model_id for m in STARTER_MODELS} == {
        m["id"]: m["id"] for m in STARTER_MODELS
    }


@pytest.mark.parametrize(
    "sent", ["claude-sonnet-4", "claude-sonnet-4-0", "claude-sonnet-4-20250514", "claude-sonnet-4@20250514"]
)
def test_every_name_of_a_model_gets_the_same_family(sent: str) -> None:
    assert canonical_model("anthropic", sent).model_id == "anthropic/claude-sonnet-4"
