"""The scripted scenario every instrumentation runs: the user, the session, the model calls.

A chat call (with cached prompt tokens), a stream with usage, a stream without usage, a tool-call
round on a reasoning model (call, tool result, answer), an embedding, and two failing calls (429
rate limit, 400 context length); the fake server reads what to do from the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

USER_ID = "user-4711"
SESSION_ID = "session-0815"
ENVIRONMENT = "staging"
CHAT_MODEL = "gpt-4o-mini"
REASONING_MODEL = "o4-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
FAKE_API_KEY = "sk-fake-test-key"
SYSTEM_PROMPT = "You are the support assistant of an online shop. Answer briefly."
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "The shipping status of an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order number"}},
            "required": ["order_id"],
        },
    },
}


def _calls(client: Any) -> Iterator[tuple[str, Callable[[], Any]]]:
    """The scripted OpenAI calls, as (label, call) pairs; failures are expected for the last two."""
    system = {"role": "system", "content": SYSTEM_PROMPT}

    def chat() -> Any:
        return client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[system, {"role": "user", "content": "Where is my order 1042? [fake cached=16]"}],
            temperature=0.2,
        )

    def stream(include_usage: bool) -> Callable[[], Any]:
        def run() -> Any:
            extra = {"stream_options": {"include_usage": True}} if include_usage else {}
            chunks = client.chat.completions.create(
                model=CHAT_MODEL,
                messages=[system, {"role": "user", "content": "Can I change the delivery address?"}],
                stream=True,
                **extra,
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        return run

    def tool_round() -> Any:
        messages: list[dict[str, Any]] = [system, {"role": "user", "content": "Has order 1042 shipped yet?"}]
        first = client.chat.completions.create(model=REASONING_MODEL, messages=messages, tools=[TOOL])
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'})
        return client.chat.completions.create(model=REASONING_MODEL, messages=messages, tools=[TOOL])

    def embedding() -> Any:
        return client.embeddings.create(model=EMBEDDING_MODEL, input=["Where is my order 1042?"])

    def failing(status: int) -> Callable[[], Any]:
        def run() -> Any:
            return client.chat.completions.create(
                model=CHAT_MODEL,
                messages=[system, {"role": "user", "content": f"Summarise my orders [fake error={status}]"}],
            )

        return run

    yield "chat", chat
    yield "stream_with_usage", stream(True)
    yield "stream_without_usage", stream(False)
    yield "tool_round", tool_round
    yield "embedding", embedding
    yield "rate_limited", failing(429)
    yield "context_length", failing(400)


def run_openai_calls(client: Any) -> dict[str, str]:
    outcomes = {}
    for label, call in _calls(client):
        try:
            call()
            outcomes[label] = "ok"
        except Exception as error:  # the scripted failures; anything else shows in the summary
            outcomes[label] = f"{type(error).__name__}: {str(error)[:120]}"
    return outcomes


def openai_client(base_url: str) -> Any:
    import openai

    # No retries: each scripted call is one HTTP exchange, so the fake server's log maps 1:1.
    return openai.OpenAI(base_url=base_url, api_key=FAKE_API_KEY, max_retries=0)
