"""The credentials SDKs and collectors send, through the real app on both backends with Redis:
an API key as `X-API-Key`, as `Authorization: Bearer <key>`, and as the password of HTTP Basic."""

from __future__ import annotations

import base64

import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from observatory_api.security.authentication import ACCEPTED_FORMS
from observatory_api.settings import DatabaseSettings, FeatureSettings, RateLimitSettings, RedisSettings, Settings
from tests.conftest import make_settings
from tests.integration.ingest.payloads import PROTOBUF, new_trace_id, span, trace_request
from tests.integration.security.conftest import create_key, open_client


@pytest.fixture
def settings(migrated_database: DatabaseSettings, redis_settings: RedisSettings) -> Settings:
    return make_settings(
        migrated_database,
        redis=redis_settings,
        features=FeatureSettings(ingest=True),
        rate_limit=RateLimitSettings(auth_per_ip=1000),
    )


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def forms(key: str) -> dict[str, dict[str, str]]:
    return {
        "x-api-key": {"X-API-Key": key},
        "bearer": {"Authorization": f"Bearer {key}"},
        "basic": basic("otel-collector", key),
        "basic-user-only": basic(key, ""),
    }


def export(client: TestClient, headers: dict[str, str]) -> int:
    body = trace_request([span(new_trace_id(), 0)]).SerializeToString()
    return client.post("/v1/traces", content=body, headers={**PROTOBUF, **headers}).status_code


def test_an_ingest_key_exports_in_every_form_sdks_send(settings: Settings) -> None:
    key = create_key(settings, role="ingest")
    with open_client(settings) as client:
        for name, headers in forms(key).items():
            assert export(client, headers) == 200, name
        # The ingest role still reads nothing, whichever header carried its key.
        assert client.get("/api/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 403


def test_a_reading_key_works_as_bearer_on_rest_graphql_and_token_exchange(settings: Settings) -> None:
    key = create_key(settings, role="developer")
    with open_client(settings) as client:
        for name, headers in forms(key).items():
            assert client.get("/api/v1/models", headers=headers).status_code == 200, name
            me = client.get("/api/v1/auth/me", headers=headers).json()
            assert me["kind"] == "api_key" and me["role"] == "developer", name
        graphql = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {key}"})
        assert graphql.status_code == 200, graphql.text
        pair = client.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {key}"})
        assert pair.status_code == 200, pair.text
        # The token exchanged from a bearer key still dies with the key: it carries the key's prefix.
        access = pair.json()["access_token"]
        assert client.get("/api/v1/models", headers={"Authorization": f"Bearer {access}"}).status_code == 200


def test_a_bearer_key_is_looked_up_once_then_served_from_redis(settings: Settings) -> None:
    key = create_key(settings, role="viewer")
    with open_client(settings) as client:
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        statements: list[str] = []
        engine = client.app.state.resources.read_engine.sync_engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            for headers in forms(key).values():
                assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert not [s for s in statements if "api_keys" in s]


def test_refusals_say_which_forms_are_accepted(settings: Settings) -> None:
    key = create_key(settings, role="developer")
    cases = {
        "missing": {},
        "not a key": {"Authorization": "Bearer sk-live-123"},
        "basic not a key": basic("user", "pw"),
        "basic not base64": {"Authorization": "Basic !!!"},
        "other scheme": {"Authorization": f"Token {key}"},
    }
    with open_client(settings) as client:
        for name, headers in cases.items():
            response = client.get("/api/v1/models", headers=headers)
            assert response.status_code == 401, name
            assert response.headers["content-type"].startswith("application/problem+json")
            assert ACCEPTED_FORMS in response.json()["detail"], (name, response.json())
        unknown = "obs_0123456789ab_" + "A" * 43
        assert "not known" in client.get("/api/v1/models", headers=basic("u", unknown)).json()["detail"]
        both = client.get("/api/v1/models", headers={"Authorization": f"Bearer {key}", "X-API-Key": key})
        assert both.status_code == 401 and "not both" in both.json()["detail"]
