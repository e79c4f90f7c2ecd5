"""Small vocabularies and templates the demo generator builds prompts, completions and logs from."""

from __future__ import annotations

import json
import random
from typing import Any

SYSTEM_PROMPTS: dict[str, str] = {
    "chat-api": "You are a helpful assistant. Answer concisely and cite sources when you can.",
    "support-bot": "You are Acme's support assistant. Be polite, never promise refunds without a ticket.",
    "rag-service": "Answer using only the provided context. Say you don't know if the context is silent.",
    "agent-worker": "You are an operations agent. Use the tools available; stop when the task is done.",
}

QUESTIONS: dict[str, tuple[str, ...]] = {
    "chat-api": (
        "Write a haiku about {topic}.",
        "Explain {topic} to a ten-year-old.",
        "What are the pros and cons of {topic}?",
        "Summarise this paragraph about {topic} in two sentences.",
        "Translate 'the meeting about {topic} moved to Thursday' into French.",
        "Give me three name ideas for a startup working on {topic}.",
    ),
    "support-bot": (
        "Where is my order {order}? It was supposed to arrive yesterday.",
        "How do I reset my password? The email never arrives.",
        "Can I get a refund for order {order}?",
        "My invoice for {month} shows a double charge.",
        "How do I add a teammate to my workspace?",
    ),
    "rag-service": (
        "What does the handbook say about {topic}?",
        "Which regions does the {topic} policy apply to?",
        "Find the section of the contract that covers {topic}.",
        "What changed in the {month} release notes about {topic}?",
    ),
    "agent-worker": (
        "Summarise yesterday's failed deployments and open a ticket for each.",
        "Check the stock level of SKU {order} and reorder if below 20.",
        "Draft a weekly report on {topic} from the analytics dashboard.",
        "Triage the five newest bug reports about {topic}.",
    ),
}

TOPICS = (
    "vector databases",
    "data retention",
    "remote work",
    "solar panels",
    "GDPR",
    "quantum computing",
    "onboarding",
    "expense reports",
    "Kubernetes upgrades",
    "the holiday schedule",
)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September")

OPENINGS = (
    "Sure!",
    "Here is what I found.",
    "Good question.",
    "Based on the context provided,",
    "Thanks for reaching out.",
)
BODIES = (
    "The short answer is that {topic} depends mostly on how the team sets it up.",
    "According to the documentation, {topic} is covered in section {section}.",
    "Your order {order} left our warehouse and should arrive within two business days.",
    "I have reset the verification flow; a new email is on its way.",
    "There are three main points: cost, reliability and how well it scales.",
    "I could not find anything about {topic} in the provided documents.",
)
CLOSINGS = ("", " Let me know if you need anything else.", " I hope this helps.", " (Sources: [1], [2])")

TOOLS: dict[str, tuple[str, ...]] = {
    "support-bot": ("lookup_order", "create_ticket", "issue_refund"),
    "agent-worker": ("web_search", "sql_query", "create_ticket", "get_inventory", "send_slack_message"),
    "chat-api": ("web_search", "get_weather", "calculator"),
    "rag-service": ("rerank",),
}

TAG_VOCABULARY = ("beta", "eval", "streaming", "priority:high", "experiment:prompt-v2", "mobile", "batch")
SERVICE_TAGS = {"chat-api": "chat", "support-bot": "chat", "rag-service": "rag", "agent-worker": "agent"}
CUSTOMERS = ("acme", "globex", "initech", "umbrella", "hooli")


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        topic=rng.choice(TOPICS),
        order=f"A-{rng.randint(10000, 99999)}",
        month=rng.choice(MONTHS),
        section=f"{rng.randint(1, 12)}.{rng.randint(1, 9)}",
    )


def user_question(rng: random.Random, service: str) -> str:
    return _fill(rng, rng.choice(QUESTIONS[service]))


def prompt(rng: random.Random, service: str, question: str) -> str:
    """An LLM input: mostly chat messages as JSON, sometimes a plain text prompt."""
    if rng.random() < 0.7:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPTS[service]},
            {"role": "user", "content": question},
        ]
        return json.dumps(messages)
    return f"{SYSTEM_PROMPTS[service]}\n\nUser: {question}\nAssistant:"


def completion(rng: random.Random) -> str:
    return f"{rng.choice(OPENINGS)} {_fill(rng, rng.choice(BODIES))}{rng.choice(CLOSINGS)}"


def tool_call(rng: random.Random, tool: str) -> str:
    arguments = {"query": rng.choice(TOPICS)} if tool != "lookup_order" else {"order_id": _order(rng)}
    return json.dumps({"tool_calls": [{"name": tool, "arguments": arguments}]})


def tool_result(rng: random.Random, tool: str) -> str:
    results = {
        "lookup_order": {"status": rng.choice(("shipped", "processing", "delivered")), "eta_days": 2},
        "create_ticket": {"ticket": f"OPS-{rng.randint(1000, 9999)}"},
        "web_search": {"results": [f"https://example.com/{rng.randint(1, 999)}" for _ in range(3)]},
    }
    return json.dumps(results.get(tool, {"ok": True, "rows": rng.randint(0, 40)}))


def retrieved_documents(rng: random.Random) -> str:
    documents: list[dict[str, Any]] = [
        {"id": f"doc-{rng.randint(1, 5000)}", "score": round(rng.uniform(0.55, 0.95), 3)} for _ in range(4)
    ]
    documents.sort(key=lambda document: -document["score"])
    return json.dumps(documents)


def _order(rng: random.Random) -> str:
    return f"A-{rng.randint(10000, 99999)}"
