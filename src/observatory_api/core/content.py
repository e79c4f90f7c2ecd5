"""What is prompt content: the one classification behind every role check on text.

Roles without `read_content` (the viewer) never receive, and cannot search, what an LLM was sent
or answered. That text reaches us in columns (span `input`, `output`, `status_message`, log
`body`) and, because each instrumentation spells it its own way, in attributes. An attribute key
is content when it equals one of the namespaces below or lies under it (`llm.input_messages`
covers `llm.input_messages.0.message.content`). Span events are kept in `attributes["events"]`:
a content event keeps only its name and time, and the others lose their content attributes.

Error text counts as content: error messages and stack traces quote what the model was sent or
answered (a validation error names the offending `input_value`), so `status_message` and the
`exception.message` / `exception.stacktrace` of exception events are content too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

SPAN_CONTENT_COLUMNS = ("input", "output", "status_message")
LOG_CONTENT_COLUMNS = ("body",)
# Where the writer keeps span events (each a dict with "name" and the event's attributes).
EVENTS_KEY = "events"

# Attribute namespaces holding prompt or completion text, tool arguments and results, retrieved
# documents, templates and their variables, per vocabulary (docs/security.md prints this table).
CONTENT_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "OpenTelemetry GenAI": (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.documents",
        "gen_ai.retrieval.query.text",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.evaluation.explanation",
    ),
    "OpenInference": (
        "input.value",
        "output.value",
        "llm.input_messages",
        "llm.output_messages",
        "llm.prompts",
        "llm.choices",
        "llm.function_call",
        "llm.prompt_template.template",
        "llm.prompt_template.variables",
        "retrieval.documents",
        "reranker.query",
        "reranker.input_documents",
        "reranker.output_documents",
        "embedding.embeddings",
        "embedding.text",
        "input.documents",
        "output.documents",
        "input.images",
        "output.images",
        "message.content",
        "message.contents",
        "message.function_call_arguments_json",
        "tool_call.function.arguments",
        "document.content",
        "prompt.text",
        "completion.text",
        "audio.transcript",
        "annotation.explanation",
        "evaluation.explanation",
    ),
    "OpenLLMetry (Traceloop)": (
        "traceloop.entity.input",
        "traceloop.entity.output",
        "traceloop.prompt.template",
        "traceloop.prompt.template_variables",
        "llm.prompts",
        "llm.completions",
        "gen_ai.content.completion.chunk",
        "llm.content.completion.chunk",
        "gen_ai.guardrail.input",
        "gen_ai.guardrail.output",
        "gen_ai.task.input",
        "gen_ai.task.output",
    ),
    "OpenLIT": (
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "gen_ai.content.reasoning",
        "gen_ai.content.revised_prompt",
        "gen_ai.agent.actual_output",
        "gen_ai.agent.context",
        "gen_ai.agent.expected_output",
        "gen_ai.agent.final_result",
        "gen_ai.agent.finish.output",
        "gen_ai.agent.human_input",
        "gen_ai.agent.instructions",
        "gen_ai.agent.step_messages",
        "gen_ai.agent.tool_results",
        "gen_ai.agent.action.tool_input",
        "gen_ai.execution.input",
        "gen_ai.execution.output",
        "gen_ai.framework.pipeline.input_data",
        "gen_ai.framework.pipeline.output_data",
        "gen_ai.framework.query.text",
        "gen_ai.knowledge.search.query",
        "gen_ai.memory.input",
        "gen_ai.memory.search.query",
        "gen_ai.message.content",
        "gen_ai.request.speech.prompt",
        "gen_ai.response.audio.text",
        "gen_ai.response.tool_calls",
        "gen_ai.retrieval.query",
        "gen_ai.task.expected_output",
        "gen_ai.tool.args",
        "gen_ai.tool.input",
        "gen_ai.tool.input_kwargs",
        "gen_ai.tool.output",
        "gen_ai.tool.result",
        "gen_ai.vectordb.search.query",
        "gen_ai.workflow.input",
        "gen_ai.workflow.output",
        "db.query.text",
        "mcp.tool.arguments",
        "mcp.tool.result",
        "mcp.sampling.messages",
        "mcp.result",
    ),
    "Langfuse": (
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.observation.status_message",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.experiment.item.expected_output",
    ),
    "Vercel AI SDK": (
        "ai.prompt",
        "ai.response.text",
        "ai.response.object",
        "ai.response.toolCalls",
        "ai.response.reasoning",
        "ai.toolCall.args",
        "ai.toolCall.result",
        "ai.value",
        "ai.values",
    ),
    "Pydantic AI / Logfire": (
        "all_messages_events",
        "pydantic_ai.all_messages",
        "final_result",
        "tool_arguments",
        "tool_response",
    ),
    "MLflow": ("mlflow.spanInputs", "mlflow.spanOutputs"),
    "exceptions and error text": ("exception.message", "exception.stacktrace", "error.message"),
}
CONTENT_NAMESPACES: frozenset[str] = frozenset(key for keys in CONTENT_ATTRIBUTES.values() for key in keys)

# Span events whose attributes are all content (GenAI message and choice events, and the older
# OpenLLMetry/OpenLIT prompt and completion events): only their name is kept.
CONTENT_EVENTS: frozenset[str] = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
        "gen_ai.client.inference.operation.details",
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "gen_ai.content.reasoning",
        "gen_ai.evaluation.result",
    }
)

_CONTENT_KEYS_SEEN: dict[str, bool] = {}
_MAX_KEYS_SEEN = 4096
_CONTENT_KEY = re.compile("|".join(rf"{re.escape(name)}(?:\.|$)" for name in sorted(CONTENT_NAMESPACES)))


def is_content_key(key: str) -> bool:
    """`key` names content: it is one of the namespaces or lies under one."""
    # The same few attribute keys recur on every span: the regex (about 1 µs a key, 0.3 ms for a
    # viewer's page of 50 spans) runs once per key. Keys are the senders' own: the memo is bounded.
    found = _CONTENT_KEYS_SEEN.get(key)
    if found is None:
        if len(_CONTENT_KEYS_SEEN) >= _MAX_KEYS_SEEN:
            _CONTENT_KEYS_SEEN.clear()
        found = _CONTENT_KEYS_SEEN[key] = _CONTENT_KEY.match(key) is not None
    return found


def path_reaches_content(path: Sequence[str]) -> bool:
    """A filter on `attributes` at `path` could read content: the path is content, lies inside the
    stored events, or names an object holding a content namespace (`attributes.llm` would search
    every key under it, when senders nest their attributes)."""
    if not path:
        return False
    if path[0] == EVENTS_KEY:
        return True
    dotted = ".".join(path)
    return is_content_key(dotted) or any(name.startswith(dotted + ".") for name in CONTENT_NAMESPACES)


def without_content(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """`attributes` as a role without content access may see them (a new dict)."""
    kept: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == EVENTS_KEY and isinstance(value, list):
            kept[key] = [_event_without_content(event) for event in value]
        elif not is_content_key(key):
            kept[key] = value
    return kept


def _event_without_content(event: Any) -> Any:
    if not isinstance(event, dict):
        return None
    name = event.get("name")
    if name in CONTENT_EVENTS:
        return {key: event[key] for key in ("name", "time") if key in event}
    return without_content(event)
