"""The content classification: where namespaces begin and end, events, filter paths, its table in docs/security.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory_api.core.content import (
    CONTENT_ATTRIBUTES,
    is_content_key,
    path_reaches_content,
    without_content,
)

SECURITY_DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


@pytest.mark.parametrize(
    "key",
    [
        "input.value",
        "gen_ai.prompt",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.3.tool_calls.0.arguments",
        "llm.input_messages.0.message.contents.1.message_content.text",
        "traceloop.entity.output",
        "exception.stacktrace",
    ],
)
def test_content_keys(key: str) -> None:
    assert is_content_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "input.mime_type",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.completion_tokens",  # shares a prefix with a namespace, not a namespace boundary
        "gen_ai.request.model",
        "llm.prompt_template.version",
        "exception.type",
        "metadata",
        "inputs",
    ],
)
def test_keys_that_are_not_content(key: str) -> None:
    assert not is_content_key(key)


def test_filter_paths_that_reach_content() -> None:
    assert path_reaches_content(["llm.input_messages.0.message.content"])
    assert path_reaches_content(["llm", "input_messages"])  # the same key, addressed by segments
    assert path_reaches_content(["gen_ai"])  # an object that would hold gen_ai.prompt when nested
    assert path_reaches_content(["events", "0", "name"])
    assert not path_reaches_content(["gen_ai", "request", "model"])
    assert not path_reaches_content(["customer", "tier"])
    assert not path_reaches_content([])


def test_without_content_keeps_the_rest_and_trims_events() -> None:
    attributes = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.prompt.0.content": "secret",
        "llm.input_messages": [{"message": {"content": "secret"}}],
        "events": [
            {"name": "gen_ai.user.message", "content": "secret", "gen_ai.system": "openai"},
            {"name": "exception", "exception.type": "ValueError", "exception.message": "secret"},
        ],
    }
    assert without_content(attributes) == {
        "gen_ai.request.model": "gpt-4o",
        "events": [{"name": "gen_ai.user.message"}, {"name": "exception", "exception.type": "ValueError"}],
    }
    assert "secret" in str(attributes)  # a copy: the row read is not changed


def test_the_security_page_lists_every_content_namespace() -> None:
    page = SECURITY_DOC.read_text()
    missing = [name for names in CONTENT_ATTRIBUTES.values() for name in names if f"`{name}`" not in page]
    assert missing == [], "the content table of docs/security.md misses these namespaces"
