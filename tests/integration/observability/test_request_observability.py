"""Through the real app: request metrics, access lines, unhandled errors logged once with the request id."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings
from tests.conftest import auth_headers, make_settings
from tests.log_records import log_records


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    with log_records() as kept:
        yield kept


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_access_line_and_metrics_for_a_listing(client: TestClient, records: list[logging.LogRecord]) -> None:
    labels = {"method": "GET", "route": "/api/v1/spans", "status_class": "2xx", "role": "developer"}
    before = count("http_requests_total", **labels)
    queries = count("db_query_duration_seconds_count", operation="spans.list_spans")
    token = client.headers["authorization"].removeprefix("Bearer ")
    response = client.get(
        "/api/v1/spans",
        # A query no other test sends, so that no cached answer skips the database.
        params={"q": f"private prompt text {id(records)}", "limit": "2"},
        headers={"X-Request-ID": "obs-listing-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "obs-listing-1"
    assert count("http_requests_total", **labels) == before + 1
    assert count("db_query_duration_seconds_count", operation="spans.list_spans") == queries + 1
    (access,) = [r for r in records if r.name == "observatory_api.access" and r.request_id == "obs-listing-1"]
    assert (access.method, access.route, access.status, access.role) == ("GET", "/api/v1/spans", 200, "developer")
    assert access.path == "/api/v1/spans"
    assert access.duration_ms > 0
    # Every line written while serving it carries the id; none quotes the query or the credentials.
    formatted = [logging.getLogger().handlers[0].format(r) for r in records]
    assert not any("private prompt text" in line or token in line for line in formatted)


def test_a_401_from_the_authentication_middleware_is_counted_as_401(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/api/v1/models", "status_class": "4xx", "role": "anonymous"}
    before = count("http_requests_total", **labels)
    refused = client.get("/api/v1/models", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401
    assert count("http_requests_total", **labels) == before + 1


def test_a_404_under_the_api_is_counted_with_its_template(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/api/v1/traces/{trace_id}", "status_class": "4xx", "role": "developer"}
    before = count("http_requests_total", **labels)
    rest = count("api_rest_requests_total", method="GET", route="/api/v1/traces/{trace_id}", status_class="4xx")
    assert client.get("/api/v1/traces/" + "f" * 32).status_code == 404
    assert count("http_requests_total", **labels) == before + 1
    assert count("api_rest_requests_total", method="GET", route="/api/v1/traces/{trace_id}", status_class="4xx") == (
        rest + 1
    )


@pytest.fixture
def broken_client(tmp_path: Path) -> Iterator[TestClient]:
    """The real app on a SQLite file whose `spans` table disappears after start-up."""
    path = tmp_path / "observatory.db"
    settings = make_settings(DatabaseSettings(sqlite_path=str(path)))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers.update(auth_headers(settings, "viewer"))
        with sqlite3.connect(path) as owner:
            owner.execute("DROP TABLE spans")
        yield test_client


def test_an_unhandled_error_is_logged_once_with_the_request_id(
    broken_client: TestClient, records: list[logging.LogRecord]
) -> None:
    before = count("http_requests_total", method="GET", route="/api/v1/spans", status_class="5xx", role="viewer")
    response = broken_client.get("/api/v1/spans", headers={"X-Request-ID": "obs-broken-1"})
    assert response.status_code == 500
    assert response.json()["request_id"] == "obs-broken-1"
    assert "spans" not in response.json()["detail"], "the cause stays in the log"
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    (error,) = errors
    assert error.request_id == "obs-broken-1"
    assert error.exc_info is not None
    assert count("http_requests_total", method="GET", route="/api/v1/spans", status_class="5xx", role="viewer") == (
        before + 1
    )


def test_client_errors_are_not_logged_as_errors(broken_client: TestClient, records: list[logging.LogRecord]) -> None:
    assert broken_client.get("/api/v1/traces", params={"limit": "0"}).status_code == 400
    assert broken_client.get("/nowhere").status_code == 404
    assert broken_client.get("/api/v1/traces", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert not [r for r in records if r.levelno >= logging.WARNING]
