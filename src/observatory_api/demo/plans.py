"""Trace shapes: the tree of spans each demo service produces for one request.

A plan is a tree of `Node`s with durations but no clock times yet; `settle` applies failures
(an exception that escapes ends its parents too) and `layout` places every span inside its
parent's time window.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from observatory_api.core.vocabulary import SpanKind, SpanStatus
from observatory_api.demo import texts
from observatory_api.demo.calls import Call, embedding_call, llm_call, lognormal_int

TOOL_FAILURE_RATE = 0.025
# Share of failures that escape to the caller (the rest are handled by a fallback).
LLM_FAILURES_ESCAPING = 0.7
TOOL_FAILURES_ESCAPING = 0.5
_TOOL_LATENCY_MS = {"web_search": 800, "sql_query": 150, "lookup_order": 120, "rerank": 80, "calculator": 5}


@dataclass(slots=True)
class Node:
    kind: SpanKind
    name: str
    children: list[Node] = field(default_factory=list)
    own_ms: float = 0.0  # a leaf's duration, or a parent's own work after its children
    call: Call | None = None
    status: SpanStatus = "ok"
    status_message: str | None = None
    escapes: bool = False
    input: str | None = None
    output: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    start_ms: float = 0.0
    end_ms: float = 0.0

    def walk(self) -> list[Node]:
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


@dataclass(slots=True)
class PlanContext:
    """What one trace's plan is built from."""

    rng: random.Random
    service: str
    model_id: str
    embedding_model_id: str
    tier: str
    question: str

    def llm(self, *, input_median: float, output_median: float, tool: str | None = None) -> Node:
        rng = self.rng
        max_tokens = rng.choice((1024, 2048, 4096))
        call = llm_call(
            rng,
            self.model_id,
            input_median=input_median,
            output_median=60 if tool else output_median,
            max_tokens=max_tokens,
        )
        provider = call.model_id.split("/", 1)[0]
        node = Node("llm", f"{provider}.chat", own_ms=call.duration_ms, call=call)
        node.input = texts.prompt(rng, self.service, self.question)
        node.attributes = {
            "llm.temperature": rng.choice((0.0, 0.2, 0.7, 0.7, 1.0)),
            "llm.max_tokens": max_tokens,
            "llm.top_p": 1.0,
            "llm.stream": rng.random() < 0.6,
            "customer": {"tier": self.tier},
            "http.status_code": call.http_status,
        }
        if call.failure:
            _fail(node, call.failure, escapes=rng.random() < LLM_FAILURES_ESCAPING)
        elif tool:
            call.fields["finish_reason"] = "tool_calls"
            node.output = texts.tool_call(rng, tool)
        else:
            node.output = texts.completion(rng)
        return node

    def embedding(self) -> Node:
        call = embedding_call(self.rng, self.embedding_model_id)
        provider = call.model_id.split("/", 1)[0]
        node = Node("embedding", f"{provider}.embeddings", own_ms=call.duration_ms, call=call)
        node.input = self.question
        node.attributes = {"embedding.dimensions": self.rng.choice((768, 1024, 1536, 3072))}
        return node

    def tool(self, tool: str, *, may_escape: bool = True) -> Node:
        rng = self.rng
        latency = lognormal_int(rng, _TOOL_LATENCY_MS.get(tool, 250), 0.6, 1, 30_000)
        node = Node("tool", f"tool.{tool}", own_ms=float(latency), input=texts.tool_call(rng, tool))
        node.attributes = {"tool.name": tool}
        if rng.random() < TOOL_FAILURE_RATE:
            message = rng.choice(
                (
                    f"ToolError: HTTP 503 from {tool} backend",
                    f"TimeoutError: {tool} did not answer within 10s",
                )
            )
            _fail(node, message, escapes=may_escape and rng.random() < TOOL_FAILURES_ESCAPING)
        else:
            node.output = texts.tool_result(rng, tool)
            node.status = "ok" if rng.random() < 0.8 else "unset"  # some tools never set a status
        return node

    def retriever(self, name: str) -> Node:
        rng = self.rng
        node = Node("retriever", name, [self.embedding()], own_ms=rng.uniform(15, 160), input=self.question)
        node.output = texts.retrieved_documents(rng)
        node.attributes = {"retrieval.top_k": 4, "vector_store": rng.choice(("pgvector", "qdrant"))}
        node.status = "ok" if rng.random() < 0.8 else "unset"
        return node


def _fail(node: Node, message: str, *, escapes: bool) -> None:
    node.status, node.status_message, node.escapes = "error", message, escapes


def chat_plan(ctx: PlanContext) -> Node:
    rng = ctx.rng
    if rng.random() < 0.25:  # a bare model call: the whole trace is one llm span
        return ctx.llm(input_median=500, output_median=250)
    root = Node("chain", "POST /v1/chat/completions", input=ctx.question)
    if rng.random() < 0.3:
        tool = rng.choice(texts.TOOLS["chat-api"])
        root.children = [
            ctx.llm(input_median=600, output_median=250, tool=tool),
            ctx.tool(tool),
            ctx.llm(input_median=900, output_median=250),
        ]
    else:
        root.children = [ctx.llm(input_median=600, output_median=250)]
    return root


def support_plan(ctx: PlanContext) -> Node:
    root = Node("agent", "support_bot.handle_message", input=ctx.question)
    root.children = [ctx.retriever("kb.search")]
    if ctx.rng.random() < 0.4:
        tool = ctx.rng.choice(texts.TOOLS["support-bot"])
        root.children += [ctx.llm(input_median=1500, output_median=180, tool=tool), ctx.tool(tool)]
    root.children.append(ctx.llm(input_median=1800, output_median=180))
    return root


def rag_plan(ctx: PlanContext) -> Node:
    root = Node("chain", "rag.answer_question", input=ctx.question)
    root.children = [ctx.retriever("vector_store.search")]
    if ctx.rng.random() < 0.35:
        # Reranking is optional: when it fails the answer uses the retrieval order.
        root.children.append(ctx.tool("rerank", may_escape=False))
    root.children.append(ctx.llm(input_median=2500, output_median=300))
    return root


def agent_plan(ctx: PlanContext) -> Node:
    rng = ctx.rng
    root = Node("agent", "agent.run", input=ctx.question)
    for step in range(rng.choice((1, 1, 2))):
        tool = rng.choice(texts.TOOLS["agent-worker"])
        node = Node("chain", "agent.step", attributes={"agent.step": step + 1})
        node.children = [
            ctx.llm(input_median=2500 + 1500 * step, output_median=120, tool=tool),
            ctx.tool(tool),
        ]
        root.children.append(node)
    root.children.append(ctx.llm(input_median=4000, output_median=400))
    return root


PLANS = {
    "chat-api": chat_plan,
    "support-bot": support_plan,
    "rag-service": rag_plan,
    "agent-worker": agent_plan,
}


def settle(node: Node) -> bool:
    """Apply escaping failures: the parent fails too and skips its remaining children."""
    for index, child in enumerate(node.children):
        if settle(child):
            del node.children[index + 1 :]
            _fail(node, child.status_message or "error", escapes=True)
            return True
    return node.escapes


def layout(rng: random.Random, node: Node, start_ms: float) -> float:
    """Give `node` and its subtree start and end offsets (ms); children run one after another."""
    node.start_ms = start_ms
    clock = start_ms
    if node.children:
        clock += rng.uniform(0.2, 5.0)  # set-up before the first child
        for child in node.children:
            clock = layout(rng, child, clock) + rng.uniform(0.1, 3.0)
    node.end_ms = clock + node.own_ms
    return node.end_ms
