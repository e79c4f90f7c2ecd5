"""Prompt content never reaches a viewer: a canary trace holds a unique secret in every place that
carries content (columns, each instrumentation's attributes, nested values, span events, logs,
the status message), then every REST route and every GraphQL query field is called as a viewer.

The routes and fields come from the OpenAPI document and the GraphQL schema, so a new route is
covered without editing this test (and one it cannot call fails it). The content keys below are
written from what the instrumentations send, not from `core.content`, so the test checks that
classification instead of repeating it.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from graphql import (
    GraphQLInputObjectType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
)
from graphql.pyutils import Undefined
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.graphql.schema import build_schema
from observatory_api.settings import (
    DatabaseSettings,
    FeatureSettings,
    GraphQLSettings,
    QuerySettings,
    RateLimitSettings,
    Settings,
)
from tests.conftest import _pg_url, auth_headers, make_settings, scratch_database

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = {"from": (NOW - timedelta(hours=2)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
TRACE_ID = uuid.uuid4().hex
SESSION_ID = "sess-canary"
USER_ID = "user-canary"
SERVICE = "canary-service"
MODEL = "gpt-4o-mini"
# Seen by every role: shows that a viewer's answers are not simply empty.
VISIBLE = "visible-" + uuid.uuid4().hex[:8]

SECRETS: dict[str, str] = {}


def secret(label: str) -> str:
    value = f"secret{len(SECRETS):03d}x{uuid.uuid4().hex[:10]}"
    SECRETS[label] = value
    return value


# --------------------------------------------------------------------------- the canary trace


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _attributes(value)}}
    return {"stringValue": str(value)}


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in values.items()]


def _nanos(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1e9))


def _span(
    name: str,
    span_id: str,
    parent: str | None,
    attributes: dict[str, Any],
    *,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    start = NOW - timedelta(minutes=10)
    return {
        "traceId": TRACE_ID,
        "spanId": span_id,
        **({"parentSpanId": parent} if parent else {}),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": _nanos(start),
        "endTimeUnixNano": _nanos(start + timedelta(seconds=2)),
        "attributes": _attributes(attributes),
        "events": [
            {"name": event, "timeUnixNano": _nanos(start), "attributes": _attributes(values)}
            for event, values in events
        ],
        **({"status": status} if status else {}),
    }


def canary_spans() -> list[dict[str, Any]]:
    root = "a" * 16
    common = {"session.id": SESSION_ID, "user.id": USER_ID, "metadata": VISIBLE}
    return [
        _span(
            "agent.run",
            root,
            None,
            {
                **common,
                "openinference.span.kind": "AGENT",
                "input.value": secret("openinference input.value (column)"),
                "output.value": secret("openinference output.value (column)"),
                "traceloop.entity.input": secret("traceloop.entity.input"),
                "traceloop.entity.output": secret("traceloop.entity.output"),
                "langfuse.observation.input": secret("langfuse.observation.input"),
                "langfuse.observation.output": secret("langfuse.observation.output"),
            },
        ),
        _span(
            f"chat {MODEL}",
            "b" * 16,
            root,
            {
                **common,
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
                # The first of these three fills the `input` column; the other two stay attributes.
                "gen_ai.input.messages": json.dumps([{"role": "user", "content": secret("gen_ai.input.messages")}]),
                "input.value": secret("input.value beside gen_ai.input.messages"),
                "gen_ai.prompt": secret("gen_ai.prompt beside gen_ai.input.messages"),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "content": secret("gen_ai.output.messages")}]
                ),
                "output.value": secret("output.value beside gen_ai.output.messages"),
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": secret("system_instructions")}]),
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": secret("openllmetry gen_ai.prompt.0.content"),
                "gen_ai.completion.0.content": secret("openllmetry gen_ai.completion.0.content"),
                "gen_ai.completion.0.tool_calls.0.arguments": secret("openllmetry tool call arguments"),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": secret("openinference llm.input_messages"),
                "llm.output_messages.0.message.content": secret("openinference llm.output_messages"),
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": secret(
                    "openinference tool_call arguments"
                ),
                "llm.prompt_template.template": secret("openinference prompt template"),
                "llm.prompt_template.variables": json.dumps({"customer": secret("openinference template variables")}),
                "gen_ai.content.prompt": secret("openlit gen_ai.content.prompt"),
                "gen_ai.content.completion": secret("openlit gen_ai.content.completion"),
                "ai.prompt": secret("vercel ai.prompt"),
                "ai.response.text": secret("vercel ai.response.text"),
            },
            events=[
                ("gen_ai.user.message", {"content": secret("event gen_ai.user.message")}),
                ("gen_ai.choice", {"message": json.dumps({"content": secret("event gen_ai.choice")})}),
                ("gen_ai.content.prompt", {"gen_ai.prompt": secret("event gen_ai.content.prompt")}),
                ("gen_ai.content.completion", {"gen_ai.completion": secret("event gen_ai.content.completion")}),
                ("retry", {"attempt": 1, "reason": VISIBLE}),
            ],
        ),
        _span(
            "lookup_order",
            "c" * 16,
            root,
            {
                **common,
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.arguments": json.dumps({"order": secret("gen_ai.tool.call.arguments")}),
                "gen_ai.tool.call.result": secret("gen_ai.tool.call.result"),
            },
        ),
        _span(
            "retrieve",
            "d" * 16,
            root,
            {
                **common,
                "openinference.span.kind": "RETRIEVER",
                "input.value": secret("retriever query (column)"),
                "retrieval.documents.0.document.content": secret("openinference retrieval.documents"),
                "retrieval.documents.0.document.id": "doc-1",
            },
        ),
        _span(
            "embed",
            "e" * 16,
            root,
            {
                **common,
                "openinference.span.kind": "EMBEDDING",
                "embedding.model_name": "text-embedding-3-small",
                "embedding.embeddings.0.embedding.text": secret("openinference embedding text"),
            },
        ),
        _span(
            "parse answer",
            "f" * 16,
            root,
            # Senders may nest messages as OTLP kvlists instead of flattening them.
            {
                **common,
                "llm.input_messages": [{"message": {"role": "user", "content": secret("nested kvlist message")}}],
            },
            events=[
                (
                    "exception",
                    {
                        "exception.type": "ValidationError",
                        "exception.message": secret("exception.message"),
                        "exception.stacktrace": secret("exception.stacktrace"),
                    },
                )
            ],
            status={"code": 2, "message": secret("status_message")},
        ),
    ]


def canary_logs() -> list[dict[str, Any]]:
    moment = _nanos(NOW - timedelta(minutes=9))
    return [
        {
            "timeUnixNano": moment,
            "severityNumber": 9,
            "traceId": TRACE_ID,
            "spanId": "b" * 16,
            "body": {"stringValue": secret("log body")},
            "attributes": _attributes(
                {"gen_ai.prompt": secret("log attribute gen_ai.prompt"), "exception.message": secret("log exception")}
                | {"visible": VISIBLE}
            ),
        },
        {
            "timeUnixNano": moment,
            "severityNumber": 9,
            "traceId": TRACE_ID,
            "spanId": "b" * 16,
            "body": {"kvlistValue": {"values": _attributes({"content": secret("log event body")})}},
            "attributes": _attributes({"event.name": "gen_ai.user.message"}),
        },
    ]


def resource() -> dict[str, Any]:
    return {"attributes": _attributes({"service.name": SERVICE})}


def trace_export() -> dict[str, Any]:
    return {
        "resourceSpans": [{"resource": resource(), "scopeSpans": [{"scope": {"name": "t"}, "spans": canary_spans()}]}]
    }


def log_export() -> dict[str, Any]:
    return {"resourceLogs": [{"resource": resource(), "scopeLogs": [{"logRecords": canary_logs()}]}]}


TRACE_EXPORT, LOG_EXPORT = trace_export(), log_export()
# Where a viewer could try to search content: content keys as sent above, their ancestors, the
# stored events, and the content columns.
ATTRIBUTE_PATHS = [
    'attributes["llm.input_messages.0.message.content"]',
    'attributes["gen_ai.prompt.0.content"]',
    'attributes["input.value"]',
    'attributes["output.value"]',
    'attributes["gen_ai.prompt"]',
    'attributes["traceloop.entity.input"]',
    'attributes["gen_ai.system_instructions"]',
    'attributes["gen_ai.tool.call.result"]',
    'attributes["retrieval.documents.0.document.content"]',
    'attributes["gen_ai.content.prompt"]',
    'attributes["ai.prompt"]',
    'attributes["langfuse.observation.input"]',
    "attributes.llm.input_messages",
    "attributes.llm",
    "attributes.gen_ai",
    "attributes.input",
    "attributes.events",
    'attributes["events"]',
]
CONTENT_FIELDS = ["input", "output", "status_message", *ATTRIBUTE_PATHS]


# --------------------------------------------------------------------------- the app


@pytest_asyncio.fixture(scope="module")
async def canary_database(
    backend: str, pg_template: str, _sqlite_template_ready: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DatabaseSettings]:
    """A private copy of the migrated template of `backend`, dropped afterwards."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("canary") / "observatory.db"
        shutil.copyfile(_sqlite_template_ready, path)
        yield DatabaseSettings(sqlite_path=str(path))
        return
    async with scratch_database(pg_template, label="canary") as name:
        yield DatabaseSettings(url=_pg_url(name))


@pytest.fixture(scope="module")
def canary(canary_database: DatabaseSettings) -> Iterator[tuple[TestClient, Settings]]:
    """An app with ingest on over a database holding only the canary trace (admin writes it)."""
    settings = make_settings(
        canary_database,
        features=FeatureSettings(ingest=True),
        rate_limit=RateLimitSettings(enabled=False),
        # The generated queries select every field; the limits are tested elsewhere.
        graphql=GraphQLSettings(max_tokens=100_000, max_cost=10**9, max_rows=10**9, max_depth=20, max_aliases=1000),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        admin = {**auth_headers(settings, "admin"), "content-type": "application/json"}
        for path, document in (("/v1/traces", TRACE_EXPORT), ("/v1/logs", LOG_EXPORT)):
            stored = client.post(path, content=json.dumps(document), headers=admin)
            assert stored.status_code == 200 and "partialSuccess" not in stored.json(), stored.text
        yield client, settings


def leaked(text: str) -> list[str]:
    return [label for label, value in SECRETS.items() if value in text]


# --------------------------------------------------------------------------- REST


PATH_VALUES = {
    "trace_id": TRACE_ID,
    "session_id": SESSION_ID,
    "provider": "openai",
    "name": MODEL,
    "metric_id": "cost_usd",
}
# Query parameters that narrow a listing to the canary (tried with and without them).
NARROWING = {
    "trace_id": TRACE_ID,
    "session_id": SESSION_ID,
    "user_id": USER_ID,
    "service": SERVICE,
    "model": MODEL,
    "provider": "openai",
}
# POST routes that read no stored content, with the reason.
NOT_READS = {
    "/api/v1/auth/token": "exchanges a key for tokens",
    "/api/v1/auth/refresh": "rotates tokens",
    "/api/v1/auth/revoke": "logs out",
    "/api/v1/admin/cache/purge": "admin only, writes",
    "/v1/traces": "ingest, writes",
    "/v1/logs": "ingest, writes",
    "/v1/metrics": "ingest, counts and discards",
}


def rest_reads(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    """Every GET of the OpenAPI document with its path filled in, with and without narrowing."""
    document = client.get("/schema/openapi.json").json()
    calls = []
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                assert (method == "post" and template in NOT_READS) or template in READ_BODIES, (
                    f"{method.upper()} {template}: neither a known read nor a known write; teach this test to call it"
                )
                continue
            params = operation.get("parameters", [])
            path = template
            for name in re.findall(r"{(\w+)}", template):
                assert name in PATH_VALUES, f"no canary value for the path parameter {name} of {template}"
                path = path.replace(f"{{{name}}}", PATH_VALUES[name])
            query = {p["name"]: WINDOW[p["name"]] for p in params if p["name"] in WINDOW}
            if any(p["name"] == "limit" for p in params):
                query["limit"] = 1000
            calls.append((template, path, query))
            if template.endswith("/export"):  # every text format of an export, not only NDJSON
                calls.extend((template, path, {**query, "format": fmt}) for fmt in ("csv", "otlp-json"))
            narrowed = {
                p["name"]: NARROWING[p["name"]] for p in params if p["in"] == "query" and p["name"] in NARROWING
            }
            if narrowed:
                calls.append((template, path, {**query, **narrowed}))
    return calls


READ_BODIES: dict[str, list[dict[str, Any]]] = {
    "/api/v1/traces/search": [{**WINDOW, "limit": 1000}],
    "/api/v1/traces/export": [{**WINDOW}],
    "/api/v1/metrics/query": [
        {**WINDOW, "metrics": [{"id": "request_count"}, {"id": "cost_usd"}], "group_by": ["model", "status"]},
        {
            **WINDOW,
            "metrics": [{"id": "request_count"}],
            "group_by": ["user_id"],
            "order_by": "-request_count_count",
            "limit": 10,
        },
    ],
}


def test_the_developer_sees_every_secret(canary: Any) -> None:
    """The canary is where it should be: without this, the viewer tests could pass on nothing."""
    client, settings = canary
    developer = auth_headers(settings, "developer")
    detail = client.get(f"/api/v1/traces/{TRACE_ID}", headers=developer)
    assert detail.status_code == 200
    missing = [label for label, value in SECRETS.items() if value not in detail.text]
    assert missing == [], f"stored but not readable by a developer: {missing}"


def test_no_rest_route_gives_a_viewer_content(canary: Any) -> None:
    client, settings = canary
    viewer = auth_headers(settings, "viewer")
    answered = []
    for template, path, query in rest_reads(client):
        response = client.get(path, params=query, headers=viewer)
        assert response.status_code < 500, (template, query, response.text)
        assert leaked(response.text) == [], (template, query)
        if response.status_code == 200:
            answered.append(template)
    for template, bodies in READ_BODIES.items():
        for body in bodies:
            response = client.post(template, json=body, headers=viewer)
            assert response.status_code == 200, (template, response.text)
            assert leaked(response.text) == [], template
            answered.append(template)
    # Not vacuous: the viewer reads the canary trace, with its non-content attributes.
    detail = client.get(f"/api/v1/traces/{TRACE_ID}", headers=viewer).json()
    assert VISIBLE in json.dumps(detail) and len(_flatten(detail["spans"])) == 6
    assert {"/api/v1/traces", "/api/v1/spans", "/api/v1/logs", "/api/v1/sessions/{session_id}"} <= set(answered)
    spans = client.get("/api/v1/spans", params={**WINDOW, "trace_id": TRACE_ID}, headers=viewer).json()["data"]
    assert len(spans) == 6 and all(s["content_redacted"] and s["status_message"] is None for s in spans)
    events = next(s for s in spans if s["span_id"] == "b" * 16)["attributes"]["events"]
    assert [e["name"] for e in events] == [
        "gen_ai.user.message",
        "gen_ai.choice",
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "retry",
    ]
    assert all(set(e) == {"name", "time"} for e in events[:-1])  # content events: name and time only
    assert {k: v for k, v in events[-1].items() if k != "time"} == {"name": "retry", "attempt": 1, "reason": VISIBLE}


def test_a_viewer_cannot_search_content(canary: Any) -> None:
    client, settings = canary
    viewer, developer = auth_headers(settings, "viewer"), auth_headers(settings, "developer")
    word = SECRETS["status_message"]
    for path in ("/api/v1/traces", "/api/v1/spans", "/api/v1/logs"):
        refused = client.get(path, params={**WINDOW, "q": word}, headers=viewer)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "q", path
    for field in CONTENT_FIELDS:
        for op, value in (("contains", word[:8]), ("eq", word), ("exists", True)):
            condition = {"field": field, "op": op, "value": value}
            if op not in _OPS.get(field, ("contains", "eq", "exists")):
                continue
            search = client.post("/api/v1/traces/search", json={**WINDOW, "filter": condition}, headers=viewer)
            assert search.status_code == 400, (field, op, search.text)
            assert "may not search" in search.json()["detail"]
            export = client.post("/api/v1/traces/export", json={**WINDOW, "filter": condition}, headers=viewer)
            assert export.status_code == 400, (field, op, export.text)
            metric = {**WINDOW, "metrics": [{"id": "request_count"}], "filter": condition}
            assert client.post("/api/v1/metrics/query", json=metric, headers=viewer).status_code == 400, (field, op)
    # The same searches find the canary for a developer: the refusals above are not for nothing.
    found = {
        field: client.post(
            "/api/v1/traces/search",
            json={**WINDOW, "filter": {"field": field, "op": "contains", "value": SECRETS[label]}},
            headers=developer,
        ).json()["data"]
        for field, label in (
            ("status_message", "status_message"),
            ('attributes["gen_ai.prompt.0.content"]', "openllmetry gen_ai.prompt.0.content"),
            ('attributes["input.value"]', "input.value beside gen_ai.input.messages"),
        )
    }
    assert all([t["trace_id"] for t in traces] == [TRACE_ID] for traces in found.values()), found
    # Fields that are not content stay searchable for a viewer.
    allowed = {"field": "attributes.metadata", "op": "eq", "value": VISIBLE}
    visible = client.post("/api/v1/traces/search", json={**WINDOW, "filter": allowed}, headers=viewer)
    assert [t["trace_id"] for t in visible.json()["data"]] == [TRACE_ID]


_OPS = {"input": ("contains", "exists"), "output": ("contains", "exists")}


def _flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for node in nodes for n in (node, *_flatten(node["children"]))]


# --------------------------------------------------------------------------- GraphQL


ID_ARGUMENTS = {"trace": TRACE_ID, "session": SESSION_ID, "model": f"openai/{MODEL}", "metric": "cost_usd"}


def graphql_queries() -> list[tuple[str, str]]:
    """One query per root field, selecting every field it can reach (each type once per path)."""
    schema: GraphQLSchema = build_schema(GraphQLSettings(introspection=True), QuerySettings())._schema
    queries = []
    for name, field in schema.query_type.fields.items():
        arguments = []
        for arg_name, arg in field.args.items():
            value = _argument(name, arg_name, arg.type)
            if value is not None:
                arguments.append(f"{arg_name}: {value}")
            else:
                required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
                assert not required, f"no canary value for {name}({arg_name})"
        selection = _selection(field.type, ())
        call = f"{name}({', '.join(arguments)})" if arguments else name
        queries.append((name, f"{{ {call} {selection} }}"))
    return queries


def _argument(field: str, name: str, kind: Any) -> str | None:
    named = get_named_type(kind)
    window = f'from: "{WINDOW["from"]}", to: "{WINDOW["to"]}"'
    if name == "id":
        return json.dumps(ID_ARGUMENTS[field])
    if name in ("from", "to"):
        return json.dumps(WINDOW[name])
    if name == "limit":
        return "100"
    if isinstance(named, GraphQLInputObjectType):
        if named.name == "MetricQueryInput":
            return f'{{ {window}, metrics: [{{id: "request_count"}}, {{id: "cost_usd"}}], groupBy: ["model"] }}'
        if "from" in named.fields:
            return f"{{ {window} }}"
    return None


def _selection(kind: Any, seen: tuple[str, ...]) -> str:
    named = get_named_type(kind)
    if isinstance(named, GraphQLScalarType) or not isinstance(named, GraphQLObjectType):
        return ""
    if named.name in seen:
        return ""
    parts = []
    for name, field in named.fields.items():
        required = [
            a for a in field.args.values() if isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined
        ]
        if required:
            continue
        inner = get_named_type(field.type)
        if isinstance(inner, GraphQLObjectType):
            sub = _selection(field.type, (*seen, named.name))
            if sub:
                window = f'(from: "{WINDOW["from"]}", to: "{WINDOW["to"]}")' if "from" in field.args else ""
                parts.append(f"{name}{window} {sub}")
        else:
            parts.append(name)
    return "{ " + " ".join(parts) + " }"


def test_no_graphql_field_gives_a_viewer_content(canary: Any) -> None:
    client, settings = canary
    viewer = auth_headers(settings, "viewer")
    returned = {}
    for name, query in graphql_queries():
        response = client.post("/graphql", json={"query": query}, headers=viewer)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert leaked(response.text) == [], name
        assert not body.get("errors"), (name, body["errors"])
        returned[name] = body["data"][name]
    assert VISIBLE in json.dumps(returned["trace"]) and len(returned["trace"]["spans"]) == 6
    assert returned["spans"] and returned["logs"] and returned["session"]


def test_a_viewer_cannot_search_content_through_graphql(canary: Any) -> None:
    client, settings = canary
    viewer = auth_headers(settings, "viewer")
    word = SECRETS["status_message"]
    window = f'from: "{WINDOW["from"]}", to: "{WINDOW["to"]}"'
    for query in (
        f'{{ spans(filter: {{ {window}, text: "{word}" }}) {{ id }} }}',
        f'{{ traces(filter: {{ {window}, text: "{word}" }}) {{ id }} }}',
        f'{{ logs(filter: {{ {window}, text: "{word}" }}) {{ id }} }}',
    ):
        errors = client.post("/graphql", json={"query": query}, headers=viewer).json()["errors"]
        assert errors[0]["extensions"]["code"] == "INVALID_INPUT", query
    search = "query($f: JSON!) { searchTraces(filter: $f, " + window + ") { items { id } } }"
    metric = (
        "query($f: JSON!) { metricQuery(input: {"
        + window
        + ', metrics: [{id: "request_count"}], filter: $f}) { totals } }'
    )
    for field in CONTENT_FIELDS:
        condition = {"field": field, "op": "contains", "value": word}
        for query in (search, metric):
            body = client.post("/graphql", json={"query": query, "variables": {"f": condition}}, headers=viewer).json()
            assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT", (field, body)
            assert leaked(json.dumps(body)) == []
