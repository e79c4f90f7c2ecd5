"""Each role's view of the same data: admin and developer see content, a viewer sees it redacted
everywhere (list, detail, logs) and cannot search it; ingest reads nothing; admin endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, RateLimitSettings, Settings
from tests import dataset
from tests.conftest import auth_headers, make_settings

HIGH = RateLimitSettings(roles={"admin": 10**6, "developer": 10**6, "viewer": 10**6, "ingest": 10**6})


@pytest.fixture(scope="module")
def role_app(backend: str, seeded_databases: dict[str, DatabaseSettings]) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(seeded_databases[backend], rate_limit=HIGH)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, settings


def flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(flatten(node["children"]))
    return out


def richest_trace() -> tuple[str, list[Any]]:
    return max(dataset.spans_by_trace().items(), key=lambda item: len(item[1]))


def test_each_role_sees_the_same_trace_with_or_without_content(role_app, full_range) -> None:  # type: ignore[no-untyped-def]
    client, settings = role_app
    trace_id, spans = richest_trace()
    llm = next(s for s in spans if s.kind == "llm" and s.input)
    logs = [log for log in dataset.logs() if log.trace_id == trace_id]
    views = {}
    # Developer first: its cached response must never reach the viewer.
    for role in ("developer", "admin", "viewer"):
        response = client.get(f"/api/v1/traces/{trace_id}", headers=auth_headers(settings, role))
        assert response.status_code == 200, (role, response.text)
        views[role] = response.json()
    for role in ("developer", "admin"):
        flat = {n["span_id"]: n for n in flatten(views[role]["spans"])}
        assert flat[llm.span_id]["input"] == llm.input and flat[llm.span_id]["output"] == llm.output
        assert not flat[llm.span_id]["content_redacted"]
        assert sorted(log["body"] for log in views[role]["logs"]) == sorted(log.body for log in logs)
    viewer = flatten(views["viewer"]["spans"])
    assert len(viewer) == len(spans)
    assert all(n["input"] is None and n["output"] is None and n["content_redacted"] for n in viewer)
    # Everything else is the same as the developer's view.
    developer = {n["span_id"]: n for n in flatten(views["developer"]["spans"])}
    for node in viewer:
        same = {
            k: v
            for k, v in developer[node["span_id"]].items()
            if k not in ("input", "output", "content_redacted", "children")
        }
        assert {k: node[k] for k in same} == same
    assert views["viewer"]["logs"] and all(
        log["body"] is None and log["content_redacted"] for log in views["viewer"]["logs"]
    )


def test_viewer_lists_of_spans_and_logs_are_redacted(role_app, full_range) -> None:  # type: ignore[no-untyped-def]
    client, settings = role_app
    params = {**full_range, "kind": "llm", "limit": 50}
    developer = client.get("/api/v1/spans", params=params, headers=auth_headers(settings, "developer")).json()["data"]
    viewer = client.get("/api/v1/spans", params=params, headers=auth_headers(settings, "viewer")).json()["data"]
    assert [s["span_id"] for s in viewer] == [s["span_id"] for s in developer]
    assert any(s["input"] for s in developer)
    assert all(s["input"] is None and s["output"] is None and s["content_redacted"] for s in viewer)
    log_params = {**full_range, "limit": 20}
    dev_logs = client.get("/api/v1/logs", params=log_params, headers=auth_headers(settings, "developer")).json()
    viewer_logs = client.get("/api/v1/logs", params=log_params, headers=auth_headers(settings, "viewer")).json()
    assert all(log["body"] for log in dev_logs["data"])
    assert [log["log_id"] for log in viewer_logs["data"]] == [log["log_id"] for log in dev_logs["data"]]
    assert all(log["body"] is None and log["content_redacted"] for log in viewer_logs["data"])


def test_a_viewer_cannot_find_records_by_their_text(role_app, full_range) -> None:  # type: ignore[no-untyped-def]
    client, settings = role_app
    viewer, developer = auth_headers(settings, "viewer"), auth_headers(settings, "developer")
    word = next(s.input for s in dataset.spans() if s.input).split()[0].strip('"{}[]:,').lower()
    for path in ("/api/v1/traces", "/api/v1/spans", "/api/v1/logs"):
        refused = client.get(path, params={**full_range, "q": word}, headers=viewer)
        assert refused.status_code == 400, path
        assert refused.json()["errors"][0]["field"] == "q"
        assert client.get(path, params={**full_range, "q": word}, headers=developer).status_code == 200
    for field in ("input", "output"):
        body = {**full_range, "filter": {"field": field, "op": "contains", "value": word}}
        refused = client.post("/api/v1/traces/search", json=body, headers=viewer)
        assert refused.status_code == 400 and "may not search" in refused.json()["detail"]
        found = client.post("/api/v1/traces/search", json=body, headers=developer)
        assert found.status_code == 200
    # Nested inside a boolean tree too.
    nested = {
        **full_range,
        "filter": {
            "or": [
                {"field": "model", "op": "eq", "value": "x"},
                {"not": {"field": "input", "op": "exists", "value": True}},
            ]
        },
    }
    assert client.post("/api/v1/traces/search", json=nested, headers=viewer).status_code == 400
    assert (
        client.post(
            "/api/v1/traces/search",
            json={**full_range, "filter": {"field": "model", "op": "eq", "value": "gpt-4o"}},
            headers=viewer,
        ).status_code
        == 200
    )


def test_the_ingest_role_reads_nothing_and_admin_endpoints_need_admin(role_app) -> None:  # type: ignore[no-untyped-def]
    client, settings = role_app
    forbidden = client.get("/api/v1/traces", headers=auth_headers(settings, "ingest"))
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert forbidden.json()["title"] == "Forbidden"
    assert client.get("/api/v1/auth/me", headers=auth_headers(settings, "ingest")).json()["permissions"] == ["ingest"]
    for role in ("developer", "viewer", "ingest"):
        assert client.get("/api/v1/admin/api-keys", headers=auth_headers(settings, role)).status_code == 403
        assert client.post("/api/v1/admin/cache/purge", headers=auth_headers(settings, role)).status_code == 403
    keys = client.get("/api/v1/admin/api-keys", headers=auth_headers(settings, "admin"))
    assert keys.status_code == 200 and isinstance(keys.json()["data"], list)
    purged = client.post("/api/v1/admin/cache/purge", headers=auth_headers(settings, "admin"))
    assert purged.status_code == 200 and purged.json() == {"purged": True}
