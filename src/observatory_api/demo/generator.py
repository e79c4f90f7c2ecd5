"""A deterministic generator of realistic LLM telemetry for demos, tests and benchmarks.

Everything comes from one `random.Random(seed)`: the same arguments give the same records. The
ids also depend on the end time (`demo.ids`), so generations ending at other times never share one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.demo import texts
from observatory_api.demo.calls import CHAT_MODEL_WEIGHTS, EMBEDDING_MODEL_WEIGHTS, pick
from observatory_api.demo.ids import generation_salt, hex_id
from observatory_api.demo.logs import trace_logs
from observatory_api.demo.plans import PLANS, Node, PlanContext, layout, settle
from observatory_api.models.catalogue_data import STARTER_MODELS
from observatory_api.models.pricing import ModelPrices, PriceHistory, PricePeriod
from observatory_api.storage.costs import name_and_price

_CATALOGUE_HISTORY = PriceHistory(
    {
        (entry["provider"], entry["name"]): [
            PricePeriod(effective_from=datetime(1970, 1, 1, tzinfo=UTC), prices=ModelPrices.from_row(entry))
        ]
        for entry in STARTER_MODELS
    }
)

BATCH_TRACES = 1000
MAX_SESSIONS = 1500
MAX_USERS = 300
NO_SESSION_SHARE = 0.1  # traces outside any session (batch jobs, one-off calls)
SERVICE_WEIGHTS = {"chat-api": 35, "support-bot": 25, "rag-service": 25, "agent-worker": 15}
ENVIRONMENT_WEIGHTS = {"production": 80, "staging": 15, "development": 5}
TIER_WEIGHTS = {"free": 60, "pro": 30, "gold": 10}


@dataclass(slots=True, frozen=True)
class _User:
    user_id: str
    tier: str
    customer: str | None


@dataclass(slots=True, frozen=True)
class _Session:
    session_id: str
    user: _User
    environment: str
    service: str
    start: datetime
    spread_seconds: float
    model_id: str
    embedding_model_id: str


@dataclass(slots=True)
class _World:
    end: datetime
    days: int
    salt: int  # XORed into every id: see demo.ids
    users: list[_User]
    user_weights: list[float]
    sessions: list[_Session]
    session_weights: list[float]


def generate(
    *, traces: int, seed: int = 42, end: datetime, days: int = 30, batch_size: int = BATCH_TRACES
) -> Iterator[tuple[list[SpanRecord], list[LogRecord]]]:
    """Yield (spans, logs) for `traces` traces, `batch_size` traces at a time.

    Trace start times follow a daily and weekly traffic shape over the `days` days ending at
    `end` (timezone-aware); no span ends after `end`.
    """
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    if traces < 0 or days < 1 or batch_size < 1:
        raise ValueError("traces must be >= 0, days and batch_size >= 1")
    rng = random.Random(seed)  # noqa: S311 - demo data wants reproducible, not secret, numbers
    world = _build_world(rng, traces, end, days, generation_salt(seed=seed, end=end, days=days))
    spans: list[SpanRecord] = []
    logs: list[LogRecord] = []
    for index in range(traces):
        trace_spans, trace_logs_ = _trace(rng, world)
        spans += trace_spans
        logs += trace_logs_
        if (index + 1) % batch_size == 0:
            yield spans, logs
            spans, logs = [], []
    if spans:
        yield spans, logs


def _build_world(rng: random.Random, traces: int, end: datetime, days: int, salt: int) -> _World:
    session_count = max(1, min(MAX_SESSIONS, traces // 4))
    user_count = max(1, min(MAX_USERS, math.ceil(session_count / 5)))
    users = [
        _User(
            f"user-{number:04d}",
            pick(rng, TIER_WEIGHTS),
            rng.choice(texts.CUSTOMERS) if rng.random() < 0.4 else None,
        )
        for number in range(1, user_count + 1)
    ]
    # A few users are much busier than the rest.
    user_weights = [1 / (rank + 1) ** 0.9 for rank in range(user_count)]
    sessions = []
    for _ in range(session_count):
        sessions.append(
            _Session(
                session_id=f"sess_{hex_id(rng, 64, salt)}",
                user=rng.choices(users, weights=user_weights)[0],
                environment=pick(rng, ENVIRONMENT_WEIGHTS),
                service=pick(rng, SERVICE_WEIGHTS),
                start=_sample_time(rng, end, days),
                spread_seconds=min(rng.expovariate(1 / 1200), 7200.0),
                model_id=pick(rng, CHAT_MODEL_WEIGHTS),
                embedding_model_id=pick(rng, EMBEDDING_MODEL_WEIGHTS),
            )
        )
    session_weights = [rng.lognormvariate(0, 0.8) for _ in sessions]
    return _World(end, days, salt, users, user_weights, sessions, session_weights)


def _traffic_weight(moment: datetime, end: datetime, days: int) -> float:
    """Relative traffic at `moment`, at most 1: a working-hours peak, quiet weekends, growth."""
    hour = moment.hour + moment.minute / 60
    distance = min(abs(hour - 15), 24 - abs(hour - 15))  # the peak is 15:00 UTC
    daily = 0.15 + 0.85 * math.exp(-(distance**2) / (2 * 4.0**2))
    weekly = 0.45 if moment.weekday() >= 5 else 1.0
    growth = 1 - 0.25 * (end - moment) / timedelta(days=days)
    return daily * weekly * growth


def _sample_time(rng: random.Random, end: datetime, days: int) -> datetime:
    # Rejection sampling: uniform over the window, kept in proportion to the traffic weight.
    window = days * 86_400
    while True:
        moment = end - timedelta(seconds=rng.random() * window)
        if rng.random() <= _traffic_weight(moment, end, days):
            return moment


def _trace(rng: random.Random, world: _World) -> tuple[list[SpanRecord], list[LogRecord]]:
    session: _Session | None = None
    if rng.random() >= NO_SESSION_SHARE:
        session = rng.choices(world.sessions, weights=world.session_weights)[0]
    if session is not None:
        user, environment, service = session.user, session.environment, session.service
        start = session.start + timedelta(seconds=rng.uniform(0, session.spread_seconds))
        # Within a session the app mostly sticks to its configured model.
        model_id = session.model_id if rng.random() < 0.85 else pick(rng, CHAT_MODEL_WEIGHTS)
        embedding_model_id = session.embedding_model_id
    else:
        user = rng.choices(world.users, weights=world.user_weights)[0]
        environment = pick(rng, ENVIRONMENT_WEIGHTS)
        service = pick(rng, SERVICE_WEIGHTS)
        start = _sample_time(rng, world.end, world.days)
        model_id = pick(rng, CHAT_MODEL_WEIGHTS)
        embedding_model_id = pick(rng, EMBEDDING_MODEL_WEIGHTS)

    question = texts.user_question(rng, service)
    context = PlanContext(rng, service, model_id, embedding_model_id, user.tier, question)
    root = PLANS[service](context)
    settle(root)
    duration_ms = layout(rng, root, 0.0)
    # Traces near the end of the window are pulled back so that nothing ends after `end`.
    start = min(start, world.end - timedelta(milliseconds=duration_ms))
    nodes = root.walk()
    _finish_root(root, nodes, user.tier)

    trace_id = hex_id(rng, 128, world.salt)
    span_ids = {id(node): hex_id(rng, 64, world.salt) for node in nodes}
    parents = {id(child): span_ids[id(node)] for node in nodes for child in node.children}
    shared: dict[str, Any] = {
        "trace_id": trace_id,
        "service_name": service,
        "user_id": user.user_id,
        "session_id": session.session_id if session else None,
        "environment": environment,
        "tags": _tags(rng, service, user),
    }
    spans = [_span_record(node, start, span_ids[id(node)], parents.get(id(node)), shared) for node in nodes]
    logs = trace_logs(rng, spans, nodes, service=service, salt=world.salt)
    return spans, logs


def _finish_root(root: Node, nodes: list[Node], tier: str) -> None:
    """Give a chain or agent root the request's outcome: the answer, or the status sent back."""
    if root.kind == "llm":
        return
    status_code = 200
    if root.status == "error":
        failed = next(node for node in nodes if node.escapes and not node.children)
        upstream = failed.call.http_status if failed.call else 503
        status_code = upstream if upstream in (429, 504) else 502
    else:
        root.output = [node for node in nodes if node.kind == "llm"][-1].output
    root.attributes = {**root.attributes, "customer": {"tier": tier}, "http.status_code": status_code}


def _tags(rng: random.Random, service: str, user: _User) -> list[str]:
    tags: list[str] = []
    if rng.random() < 0.6:
        tags.append(texts.SERVICE_TAGS[service])
    if user.customer and rng.random() < 0.5:
        tags.append(f"customer:{user.customer}")
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        tag = rng.choice(texts.TAG_VOCABULARY)
        if tag not in tags and len(tags) < 3:
            tags.append(tag)
    return tags


def _span_record(
    node: Node, trace_start: datetime, span_id: str, parent_span_id: str | None, shared: dict[str, Any]
) -> SpanRecord:
    start = trace_start + timedelta(milliseconds=node.start_ms)
    end = trace_start + timedelta(milliseconds=node.end_ms)
    call = node.call
    provider, _, model = call.model_id.partition("/") if call else (None, None, None)
    record = SpanRecord(
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=node.name,
        kind=node.kind,
        start_time=start,
        end_time=end,
        duration_ms=(end - start) / timedelta(milliseconds=1),
        provider=provider,
        model=model,
        status=node.status,
        status_message=node.status_message,
        input=node.input,
        output=node.output,
        attributes=node.attributes,
        **(call.fields if call else {}),
        **{**shared, "tags": list(shared["tags"])},
    )
    # As the writer stores it (storage.costs): the demo's records then read back unchanged.
    return name_and_price(record, _CATALOGUE_HISTORY)
