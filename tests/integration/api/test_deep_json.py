"""JSON bodies nested deeper than MAX_JSON_DEPTH are a 400 problem naming the body, whatever the
depth (msgspec's RecursionError at about 1,000 levels was a 500), on every JSON endpoint of REST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.request import MAX_JSON_DEPTH, nests_deeper
from observatory_api.settings import DatabaseSettings, RateLimitSettings
from tests.conftest import BACKENDS, auth_headers, make_settings

REASON = f"JSON may nest at most {MAX_JSON_DEPTH} levels of objects and arrays"


def nested_filter(levels: int) -> bytes:
    """A body whose `filter` nests `not` objects: the body object plus `levels` more objects."""
    inner = '{"field": "model", "op": "eq", "value": "x"}'
    return ('{"filter": ' + '{"not": ' * (levels - 2) + inner + "}" * (levels - 2) + "}").encode()


def nested_arrays(levels: int, key: str = "filter") -> bytes:
    return ('{"' + key + '": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}").encode()


def post(client: TestClient, path: str, body: bytes):  # type: ignore[no-untyped-def]
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.fixture(scope="module", params=BACKENDS)
def deep_client(request: pytest.FixtureRequest, seeded_databases: dict[str, DatabaseSettings]) -> Iterator[TestClient]:
    """Its own app: every /auth request counts against a per-IP limit of 10 a minute by default."""
    limits = RateLimitSettings(roles={"developer": 100_000}, auth_per_ip=100_000)
    settings = make_settings(seeded_databases[request.param], rate_limit=limits)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(settings))
        yield client


@pytest.mark.parametrize("path", ["/api/v1/traces/search", "/api/v1/metrics/query", "/api/v1/auth/refresh"])
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 400, 2_000, 100_000])
def test_deeply_nested_bodies_are_400(deep_client: TestClient, path: str, levels: int) -> None:
    for body in (nested_filter(levels), nested_arrays(levels), nested_arrays(levels, key="zzz")):
        response = post(deep_client, path, body)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"] == [{"field": "body", "reason": REASON, "source": "body"}]


def test_a_body_at_the_limit_is_read(deep_client: TestClient) -> None:
    # Read, then refused for what it says: the filter language nests at most 8 levels.
    response = post(deep_client, "/api/v1/traces/search", nested_filter(MAX_JSON_DEPTH))
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "the filter may nest at most 8 levels"
    arrays = post(deep_client, "/api/v1/traces/search", nested_arrays(MAX_JSON_DEPTH))
    assert arrays.status_code == 400 and arrays.json()["errors"][0]["reason"] != REASON


def test_nesting_is_counted_in_objects_and_arrays() -> None:
    assert not nests_deeper({"a": [1, {"b": []}]}, 4)
    assert nests_deeper({"a": [1, {"b": []}]}, 3)
    assert not nests_deeper("scalar", 0)
    wide = {"k": [[{} for _ in range(1_000)] for _ in range(10)]}
    assert not nests_deeper(wide, 4) and nests_deeper(wide, 3)
