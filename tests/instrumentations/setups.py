"""How each package is set up as its users do, then the scenario run under a root span that
carries the user and the session the package's way (child side of harness.py, one per process)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.instrumentations.scenario import (
    CHAT_MODEL,
    EMBEDDING_MODEL,
    ENVIRONMENT,
    FAKE_API_KEY,
    REASONING_MODEL,
    SESSION_ID,
    SYSTEM_PROMPT,
    USER_ID,
    openai_client,
    run_openai_calls,
)


def _otel_pipeline(service: str, endpoint: str, headers: dict[str, str], *, logs: bool) -> tuple[Any, Any]:
    """A tracer provider (and a logger provider) exporting OTLP/HTTP protobuf, set globally."""
    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "deployment.environment.name": ENVIRONMENT})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers))
    )
    trace.set_tracer_provider(tracer_provider)
    logger_provider = None
    if logs:
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers))
        )
        _logs.set_logger_provider(logger_provider)
    return tracer_provider, logger_provider


def _hex_trace_id(span: Any) -> str:
    return format(span.get_span_context().trace_id, "032x")


def scenario_openinference(args: argparse.Namespace) -> dict[str, Any]:
    from openinference.instrumentation import using_attributes
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace

    provider, _ = _otel_pipeline(args.service, args.otlp_endpoint, args.headers, logs=False)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai_client(args.openai_base_url)
    tracer = trace.get_tracer("shop-assistant")
    with (
        using_attributes(session_id=SESSION_ID, user_id=USER_ID, tags=["support", "harness"], metadata={"plan": "pro"}),
        tracer.start_as_current_span("support-agent", attributes={"openinference.span.kind": "CHAIN"}) as root,
    ):
        root.set_attribute("input.value", "Where is my order 1042?")
        outcomes = run_openai_calls(client)
        root.set_attribute("output.value", "done")
    provider.force_flush()
    provider.shutdown()
    return {"trace_id": _hex_trace_id(root), "outcomes": outcomes}


def scenario_openinference_langchain(args: argparse.Namespace) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings
    from openinference.instrumentation import using_attributes
    from openinference.instrumentation.langchain import LangChainInstrumentor

    provider, _ = _otel_pipeline(args.service, args.otlp_endpoint, args.headers, logs=False)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    common = {"base_url": args.openai_base_url, "api_key": FAKE_API_KEY, "max_retries": 0}

    @tool
    def get_order_status(order_id: str) -> str:
        """The shipping status of an order."""
        return json.dumps({"order_id": order_id, "status": "shipped"})

    system = SystemMessage(SYSTEM_PROMPT)
    outcomes: dict[str, str] = {}

    def attempt(label: str, call: Callable[[], Any]) -> None:
        try:
            call()
            outcomes[label] = "ok"
        except Exception as error:
            outcomes[label] = f"{type(error).__name__}: {str(error)[:120]}"

    def agent(question: str) -> str:
        chat = ChatOpenAI(model=CHAT_MODEL, temperature=0.2, **common)
        attempt("chat", lambda: chat.invoke([system, HumanMessage(f"{question} [fake cached=16]")]))
        streaming = ChatOpenAI(model=CHAT_MODEL, stream_usage=True, **common)
        attempt(
            "stream_with_usage",
            lambda: "".join(
                str(c.content) for c in streaming.stream([system, HumanMessage("Can I change the delivery address?")])
            ),
        )
        plain = ChatOpenAI(model=CHAT_MODEL, stream_usage=False, **common)
        attempt(
            "stream_without_usage",
            lambda: "".join(
                str(c.content) for c in plain.stream([system, HumanMessage("Can I change the delivery address?")])
            ),
        )

        def tool_round() -> Any:
            reasoning = ChatOpenAI(model=REASONING_MODEL, **common).bind_tools([get_order_status])
            messages: list[Any] = [system, HumanMessage("Has order 1042 shipped yet?")]
            first = reasoning.invoke(messages)
            call = first.tool_calls[0]
            messages += [first, ToolMessage(get_order_status.invoke(call["args"]), tool_call_id=call["id"])]
            return reasoning.invoke(messages)

        attempt("tool_round", tool_round)
        # check_embedding_ctx_length=False: the length check downloads tiktoken's tables.
        embeddings = OpenAIEmbeddings(model=EMBEDDING_MODEL, check_embedding_ctx_length=False, **common)
        attempt("embedding", lambda: embeddings.embed_documents(["Where is my order 1042?"]))
        attempt("rate_limited", lambda: chat.invoke([system, HumanMessage("Summarise my orders [fake error=429]")]))
        attempt("context_length", lambda: chat.invoke([system, HumanMessage("Summarise my orders [fake error=400]")]))
        return "done"

    with using_attributes(
        session_id=SESSION_ID, user_id=USER_ID, tags=["support", "harness"], metadata={"plan": "pro"}
    ):
        RunnableLambda(agent).with_config(run_name="support-agent").invoke("Where is my order 1042?")
    provider.force_flush()
    provider.shutdown()
    return {"trace_id": None, "outcomes": outcomes}


def scenario_otel_genai(args: argparse.Namespace) -> dict[str, Any]:
    from opentelemetry import trace
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider, logger_provider = _otel_pipeline(args.service, args.otlp_endpoint, args.headers, logs=True)
    OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logger_provider)
    client = openai_client(args.openai_base_url)
    tracer = trace.get_tracer("shop-assistant")
    # The GenAI conventions put the conversation on gen_ai.conversation.id; user.id and session.id
    # are the general OpenTelemetry attributes. The instrumentation has no way to add them to its
    # own spans, so users set them on their own (root) span.
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support-agent",
        "user.id": USER_ID,
        "session.id": SESSION_ID,
        "gen_ai.conversation.id": SESSION_ID,
    }
    with tracer.start_as_current_span("invoke_agent support-agent", attributes=attributes) as root:
        outcomes = run_openai_calls(client)
    provider.force_flush()
    logger_provider.force_flush()
    provider.shutdown()
    logger_provider.shutdown()
    return {"trace_id": _hex_trace_id(root), "outcomes": outcomes}


def scenario_traceloop(args: argparse.Namespace) -> dict[str, Any]:
    from opentelemetry import trace
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import workflow

    Traceloop.init(
        app_name=args.service,
        api_endpoint=args.otlp_endpoint,
        headers=args.headers,
        disable_batch=False,
        resource_attributes={"deployment.environment.name": ENVIRONMENT},
    )
    client = openai_client(args.openai_base_url)
    seen: dict[str, str] = {}

    @workflow(name="support_agent")
    def support_agent() -> dict[str, str]:
        Traceloop.set_association_properties({"user_id": USER_ID, "session_id": SESSION_ID})
        seen["trace_id"] = _hex_trace_id(trace.get_current_span())
        return run_openai_calls(client)

    outcomes = support_agent()
    provider = trace.get_tracer_provider()
    provider.force_flush()  # type: ignore[attr-defined]
    provider.shutdown()  # type: ignore[attr-defined]
    return {"trace_id": seen["trace_id"], "outcomes": outcomes}


def scenario_openlit(args: argparse.Namespace) -> dict[str, Any]:
    import openlit
    from opentelemetry import trace

    # openlit fetches its price list from GitHub at init unless given a file; the machine has no
    # such network, so it gets a local list in its own format with the list prices.
    pricing = Path(args.workdir) / "openlit-pricing.json"
    pricing.write_text(json.dumps(OPENLIT_PRICING))
    openlit.init(
        application_name=args.service,
        environment=ENVIRONMENT,
        otlp_endpoint=args.otlp_endpoint,
        otlp_headers=args.headers,
        pricing_json=str(pricing),
        disable_metrics=True,
        capture_message_content=True,
    )
    client = openai_client(args.openai_base_url)
    with (
        openlit.using_attributes({"user.id": USER_ID, "session.id": SESSION_ID}),
        openlit.start_trace("support-agent") as root,
    ):
        outcomes = run_openai_calls(client)
        root.set_result("done")
    provider = trace.get_tracer_provider()
    provider.force_flush()  # type: ignore[attr-defined]
    provider.shutdown()  # type: ignore[attr-defined]
    return {"trace_id": _hex_trace_id(root._span), "outcomes": outcomes}


# openlit's pricing file format: USD per 1,000 tokens, keyed by model name. Ours (not openlit's
# published list, which the machine cannot fetch) holds OpenAI's list prices as the app's catalogue
# has them, under the requested and the snapshot names, so openlit's cost is there whichever
# name it looks up.
OPENLIT_PRICING = {
    "chat": {
        "gpt-4o-mini": {"promptPrice": 0.00015, "completionPrice": 0.0006, "cacheReadPrice": 0.000075},
        "gpt-4o-mini-2024-07-18": {"promptPrice": 0.00015, "completionPrice": 0.0006, "cacheReadPrice": 0.000075},
        "o4-mini": {"promptPrice": 0.0011, "completionPrice": 0.0044, "cacheReadPrice": 0.000275},
        "o4-mini-2025-04-16": {"promptPrice": 0.0011, "completionPrice": 0.0044, "cacheReadPrice": 0.000275},
    },
    "embeddings": {"text-embedding-3-small": 0.00002},
}

SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "openinference": scenario_openinference,
    "openinference-langchain": scenario_openinference_langchain,
    "otel-genai": scenario_otel_genai,
    "otel-genai-latest": scenario_otel_genai,
    "traceloop": scenario_traceloop,
    "openlit": scenario_openlit,
}
