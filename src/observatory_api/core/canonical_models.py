"""One name per model: the provider in one vocabulary, and the model folded to its family.

Instrumentations name the same model many ways: the dated snapshot the API answers with
(`gpt-4o-mini-2024-07-18`), the name asked for (`gpt-4o-mini`), with a router's prefix
(`openai/gpt-4o`), Gemini's `models/` prefix, Bedrock's `us.anthropic.claude-...-v1:0`. The
canonical model id is `<maker>/<family>`, e.g. `openai/gpt-4o-mini`: the maker and the family as
genai-prices (Pydantic's price data, bundled and read offline) names them, so that the catalogue's
ids (`models.id`) and its price data agree. The serving provider (`azure.ai.openai`,
`aws.bedrock`) stays in the span's `provider`, normalised to the GenAI semantic conventions'
`gen_ai.provider.name` values; the maker is who made the model, whoever serves it.

A model genai-prices does not know is folded by its date suffixes only, under the maker its
prefix names or else the provider's own name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from genai_prices import data_snapshot, types

# Spellings of providers (GenAI semconv, OpenInference `llm.provider`/`llm.system`, OpenLLMetry,
# OpenLIT, LiteLLM) -> the GenAI semantic conventions' `gen_ai.provider.name` value.
PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "mistral_ai": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "gcp.gemini": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "google-genai": "gcp.gen_ai",
    "gcp.gen_ai": "gcp.gen_ai",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "azure.ai.openai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure.ai.inference": "azure.ai.inference",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "aws.bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "x_ai": "x_ai",
    "xai": "x_ai",
    "x-ai": "x_ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "ibm_watsonx_ai": "ibm.watsonx.ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "ollama": "ollama",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
}
# A provider (semconv value) -> the genai-prices provider id its prices are under.
PRICE_PROVIDER: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "mistral_ai": "mistral",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "x_ai": "x-ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
}
# Bedrock's vendor prefixes (`anthropic.claude-...`) -> the genai-prices provider of that maker.
_BEDROCK_VENDORS = {
    "anthropic": "anthropic",
    "meta": "meta",
    "mistral": "mistral",
    "cohere": "cohere",
    "amazon": "aws",
    "deepseek": "deepseek",
    "openai": "openai",
    "ai21": "ai21",
    "writer": "writer",
    "qwen": "qwen",
}
_BEDROCK_ID = re.compile(r"^(?:(?:us|eu|apac|global|us-gov|jp|au|ca)\.)?([a-z0-9-]+)\.(.+?)(?:-v\d+(?::\d+)?)?$")
# Date suffixes of snapshots: -2024-07-18, -20240620, @20240620, -0613 (OpenAI's old month-day).
_DATE_SUFFIX = re.compile(r"(?:[-@](?:20\d\d-?[01]\d-?[0-3]\d|[01]\d[0-3]\d))$")
MAX_MODEL_ID = 300


@dataclass(frozen=True, slots=True)
class CanonicalModel:
    """The normalised provider and the canonical model id of a (provider, model) pair as sent;
    `price_provider` and `price_model` are where genai-prices prices it (None: it does not)."""

    provider: str | None
    model_id: str | None
    price_provider: types.Provider | None = None
    price_model: types.ModelInfo | None = None


def normalise_provider(provider: str | None) -> str | None:
    """The `gen_ai.provider.name` spelling of `provider`; an unknown one lowercased and trimmed."""
    if provider is None:
        return None
    key = provider.strip().lower()
    if not key:
        return None
    return PROVIDER_ALIASES.get(key, PROVIDER_ALIASES.get(key.replace(" ", "_"), key))


def canonical_model(provider: str | None, model: str | None) -> CanonicalModel:
    """The canonical model of `model` as sent with `provider` as sent (either may be None)."""
    return _canonical(provider, model)


@lru_cache(maxsize=4096)  # a few hundred pairs recur in every batch: the ingest path pays once each
def _canonical(provider_sent: str | None, model_sent: str | None) -> CanonicalModel:
    provider = normalise_provider(provider_sent)
    if model_sent is None or not model_sent.strip():
        return CanonicalModel(provider, None)
    name = model_sent.strip().lower()
    if name.startswith("models/"):  # Gemini's resource names
        name = name[len("models/") :]
    hint = PRICE_PROVIDER.get(provider or "")
    prefix, slash, rest = name.partition("/")
    if slash and rest and (prefix in PROVIDER_ALIASES or prefix in PRICE_PROVIDER.values()):
        # A router's or LiteLLM's `openai/gpt-4o`: the prefix names the maker.
        hint = PRICE_PROVIDER.get(normalise_provider(prefix) or "", prefix)
        name = rest
    found = None
    if bedrock := _BEDROCK_ID.match(name) if (hint == "aws" or "." in name.split("/")[0]) else None:
        vendor = _BEDROCK_VENDORS.get(bedrock.group(1))
        if vendor is not None:
            found = _price_lookup(bedrock.group(2), vendor)
            if found is None and hint != "aws":  # not priced by its maker: Bedrock's own id
                hint, name = vendor, bedrock.group(2)
    found = found or _price_lookup(name, hint)
    if found is not None:
        price_provider, info = found
        maker = _maker_of(info, price_provider)
        family = _family(info, price_provider)
        return CanonicalModel(provider, f"{maker}/{family}"[:MAX_MODEL_ID], price_provider, info)
    if hint is None and provider is None and "/" in name:  # already `<maker>/<model>`
        return CanonicalModel(provider, _fold_dates(name)[:MAX_MODEL_ID])
    maker = hint or provider or _maker_from_name(name) or "unknown"
    return CanonicalModel(provider, f"{maker}/{_fold_dates(name)}"[:MAX_MODEL_ID])


def _price_lookup(name: str, provider_id: str | None) -> tuple[types.Provider, types.ModelInfo] | None:
    snapshot = data_snapshot.get_snapshot()
    try:
        return snapshot.find_provider_model(name, None, provider_id, None)
    except LookupError:
        pass
    if provider_id is not None:  # a provider genai-prices does not price: try by the name alone
        try:
            return snapshot.find_provider_model(name, None, None, None)
        except LookupError:
            return None
    return None


_families: dict[tuple[str, str], str] = {}
_NOT_A_FAMILY = re.compile(r"20\d\d|[-@.]$")


def _family(info: types.ModelInfo, price_provider: types.Provider) -> str:
    """The family name of a genai-prices model: its shortest undated alias that is a prefix of its
    id (`claude-sonnet-4` for `claude-sonnet-4-0`, `claude-3-7-sonnet` for
    `claude-3-7-sonnet-latest`) and names no other model, else its id. A function of the model
    alone, so every name of it gets the same family (and the catalogue's names are these)."""
    key = (price_provider.id, info.id)
    if key not in _families:
        candidates = sorted(
            {
                literal
                for literal in _literals(info.match)
                if info.id.startswith(literal) and not _NOT_A_FAMILY.search(literal)
            },
            key=lambda name: (len(name), name),
        )
        snapshot = data_snapshot.get_snapshot()
        family = next(
            (
                name
                for name in candidates
                if info.is_match(name) and price_provider.find_model(name, all_providers=snapshot.providers) is info
            ),
            info.id,
        )
        _families[key] = family
    return _families[key]


def _literals(clause: object) -> list[str]:
    """Every equals / starts-with string of a genai-prices match clause."""
    found: list[str] = []
    for name in ("equals", "starts_with"):
        value = getattr(clause, name, None)
        if isinstance(value, str):
            found.append(value)
    for name in ("or_", "and_"):
        for child in getattr(clause, name, None) or ():
            found += _literals(child)
    return found


def _maker_of(info: types.ModelInfo, price_provider: types.Provider) -> str:
    """Who made the model: the provider genai-prices recognises by the family's name (Claude on
    Vertex is Anthropic's), else the one whose price list holds it."""
    maker = _maker_from_name(info.id)
    if maker is not None:
        return maker
    snapshot = data_snapshot.get_snapshot()
    owner = next((p.id for p in snapshot.providers if any(m is info for m in p.models)), None)
    return owner or price_provider.id


@lru_cache(maxsize=4096)
def _maker_from_name(name: str) -> str | None:
    for candidate in data_snapshot.get_snapshot().providers:
        if candidate.model_match is not None and candidate.model_match.is_match(name):
            return candidate.id
    return None


def _fold_dates(name: str) -> str:
    folded = _DATE_SUFFIX.sub("", name)
    return folded or name
