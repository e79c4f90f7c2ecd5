"""GET /spans, /sessions, /sessions/{id}, /logs against the generator's records."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from litestar.testing import TestClient

from tests import dataset
from tests.integration.api.test_traces import walk


def test_spans_filter_by_kind_and_trace(client: TestClient, full_range: dict) -> None:
    llm = walk(client, "/api/v1/spans", {**full_range, "kind": "llm", "limit": 1000})
    expected = {(s.trace_id, s.span_id) for s in dataset.spans() if s.kind == "llm"}
    assert {(s["trace_id"], s["span_id"]) for s in llm} == expected
    assert all(s["model"] for s in llm)

    trace_id = next(iter(dataset.spans_by_trace()))
    one = walk(client, "/api/v1/spans", {**full_range, "trace_id": trace_id})
    assert sorted(s["span_id"] for s in one) == sorted(s.span_id for s in dataset.spans_by_trace()[trace_id])


def test_spans_model_and_duration_sort(client: TestClient, full_range: dict) -> None:
    items = walk(client, "/api/v1/spans", {**full_range, "model": "gpt-4o-mini", "sort": "-duration", "limit": 100})
    assert len(items) == sum(1 for s in dataset.spans() if s.model == "gpt-4o-mini")
    durations = [s["duration_ms"] for s in items]
    assert durations == sorted(durations, reverse=True)


def test_spans_reject_bad_ids(client: TestClient) -> None:
    response = client.get("/api/v1/spans", params={"trace_id": "xyz"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "trace_id"
    assert client.get("/api/v1/spans", params={"kind": "robot"}).status_code == 400


def _sessions() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for trace_id, spans in dataset.spans_by_trace().items():
        session = dataset.root_of(spans).session_id
        if session:
            grouped[session].append(trace_id)
    return grouped


def test_sessions_list_counts_traces(client: TestClient, full_range: dict) -> None:
    items = walk(client, "/api/v1/sessions", {**full_range, "limit": 50})
    expected = _sessions()
    assert {s["session_id"]: s["trace_count"] for s in items} == {k: len(v) for k, v in expected.items()}
    last_seen = [datetime.fromisoformat(s["last_seen"]) for s in items]
    assert last_seen == sorted(last_seen, reverse=True)


def test_session_detail_lists_its_traces_in_order(client: TestClient) -> None:
    session_id, trace_ids = max(_sessions().items(), key=lambda item: len(item[1]))
    response = client.get(f"/api/v1/sessions/{session_id}", params={"limit": 2})
    assert response.status_code == 200
    body = response.json()
    collected = [t["trace_id"] for t in body["traces"]]
    while body["has_more"]:
        body = client.get(f"/api/v1/sessions/{session_id}", params={"limit": 2, "cursor": body["next_cursor"]}).json()
        collected.extend(t["trace_id"] for t in body["traces"])
    assert collected == sorted(trace_ids, key=dataset.trace_start)
    assert client.get("/api/v1/sessions/no-such-session").status_code == 404


def test_logs_filters(client: TestClient, full_range: dict) -> None:
    errors = walk(client, "/api/v1/logs", {**full_range, "severity": "ERROR", "limit": 1000})
    assert sorted(entry["log_id"] for entry in errors) == sorted(
        log.log_id for log in dataset.logs() if log.severity == "ERROR"
    )
    trace_id = next(log.trace_id for log in dataset.logs() if log.trace_id)
    mine = walk(client, "/api/v1/logs", {**full_range, "trace_id": trace_id})
    assert sorted(e["log_id"] for e in mine) == sorted(log.log_id for log in dataset.logs() if log.trace_id == trace_id)
    times = [datetime.fromisoformat(e["time"]) for e in walk(client, "/api/v1/logs", {**full_range, "limit": 500})]
    assert times == sorted(times, reverse=True) and len(times) == len(dataset.logs())
    word = dataset.logs()[0].body.split()[0].lower()
    found = walk(client, "/api/v1/logs", {**full_range, "q": word, "limit": 1000})
    assert len(found) == sum(1 for log in dataset.logs() if word in log.body.lower())
    assert client.get("/api/v1/logs", params={"severity": "LOUD"}).status_code == 400
    assert client.get("/api/v1/logs", params={"span_id": "123"}).status_code == 400
