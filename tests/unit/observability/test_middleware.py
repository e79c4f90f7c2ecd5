"""The request metrics count what the client received, with bounded labels."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from litestar import Litestar, get
from litestar.middleware import ASGIMiddleware
from litestar.params import FromPath
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import REGISTRY

from observatory_api.observability.middleware import (
    ANONYMOUS,
    OTHER_ROLE,
    UNMATCHED,
    install_middleware,
    role_of,
    route_template,
    status_class,
)

ROLES = frozenset({"admin", "viewer"})


class RefuseWith429(ASGIMiddleware):
    """Stands for a rate limiter inside the app: answers before any handler runs."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["path"].startswith("/limited"):
            await send({"type": "http.response.start", "status": 429, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await next_app(scope, receive, send)


@dataclass
class User:
    role: str


class Authenticate(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        role = dict(scope["headers"]).get(b"x-test-role")
        if role:
            scope["user"] = User(role=role.decode())
        await next_app(scope, receive, send)


@get("/limited/{item_id:str}", sync_to_thread=False)
def limited(item_id: FromPath[str]) -> str:
    return item_id


@get("/items/{item_id:int}", sync_to_thread=False)
def item(item_id: FromPath[int]) -> dict[str, int]:
    return {"id": item_id}


@get("/alive", sync_to_thread=False)
def alive() -> str:
    return "ok"


@get("/boom", sync_to_thread=False)
def boom() -> str:
    raise RuntimeError("boom")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = Litestar(route_handlers=[limited, item, alive, boom], middleware=[Authenticate(), RefuseWith429()])
    install_middleware(app, api_prefix="/items", known_roles=ROLES)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_429_from_an_inner_middleware_is_counted_as_429(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/limited/{item_id}", "status_class": "4xx", "role": ANONYMOUS}
    before = count("http_requests_total", **labels)
    assert client.get("/limited/abc").status_code == 429
    assert count("http_requests_total", **labels) == before + 1
    ok = {**labels, "status_class": "2xx"}
    assert count("http_requests_total", **ok) == 0


def test_unmatched_paths_are_one_label(client: TestClient) -> None:
    labels = {"method": "GET", "route": UNMATCHED, "status_class": "4xx", "role": ANONYMOUS}
    before = count("http_requests_total", **labels)
    for suffix in ("a", "b", "c"):
        assert client.get(f"/nowhere/{suffix}").status_code == 404
    assert count("http_requests_total", **labels) == before + 3
    assert count("http_requests_total", method="GET", route="/nowhere/a", status_class="4xx", role=ANONYMOUS) == 0


def test_route_templates_not_raw_paths_and_roles_from_the_user(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/items/{item_id}", "status_class": "2xx", "role": "admin"}
    before = count("http_requests_total", **labels)
    rest_before = count("api_rest_requests_total", method="GET", route="/items/{item_id}", status_class="2xx")
    assert client.get("/items/1", headers={"X-Test-Role": "admin"}).status_code == 200
    assert client.get("/items/2", headers={"X-Test-Role": "admin"}).status_code == 200
    assert count("http_requests_total", **labels) == before + 2
    assert count("api_rest_requests_total", method="GET", route="/items/{item_id}", status_class="2xx") == (
        rest_before + 2
    )
    # An unknown role never becomes a label value of its own.
    other = {**labels, "role": OTHER_ROLE}
    before_other = count("http_requests_total", **other)
    assert client.get("/items/3", headers={"X-Test-Role": "attacker-chosen-123"}).status_code == 200
    assert count("http_requests_total", **other) == before_other + 1


def test_health_probes_are_not_counted(client: TestClient) -> None:
    before = count("http_requests_total", method="GET", route="/alive", status_class="2xx", role=ANONYMOUS)
    assert client.get("/alive").status_code == 200
    assert count("http_requests_total", method="GET", route="/alive", status_class="2xx", role=ANONYMOUS) == before


def test_a_500_is_counted_and_the_duration_observed(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/boom", "status_class": "5xx", "role": ANONYMOUS}
    before = count("http_requests_total", **labels)
    durations = count("http_request_duration_seconds_count", method="GET", route="/boom")
    assert client.get("/boom").status_code == 500
    assert count("http_requests_total", **labels) == before + 1
    assert count("http_request_duration_seconds_count", method="GET", route="/boom") == durations + 1
    assert count("http_requests_in_flight") == 0


def test_label_helpers() -> None:
    assert route_template({"route_handler": object(), "path_template": "/t/{trace_id:str}/x/{n:int}"}) == (
        "/t/{trace_id}/x/{n}"
    )
    assert route_template({"path_template": "/t"}) == UNMATCHED
    assert role_of({}, ROLES) == ANONYMOUS
    assert role_of({"user": {"role": "viewer"}}, ROLES) == "viewer"
    assert role_of({"user": User(role="root")}, ROLES) == OTHER_ROLE
    assert [status_class(code) for code in (200, 301, 404, 429, 503, 99)] == [
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
        "other",
    ]
