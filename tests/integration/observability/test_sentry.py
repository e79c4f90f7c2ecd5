"""Sentry: an unhandled error reaches a (local, fake) Sentry once, tagged with the request id,
without the request body or credentials."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, ObservabilitySettings
from tests.conftest import auth_headers, make_settings
from tests.integration.observability.receivers import receiver


@pytest.fixture
def sentry_off_afterwards() -> Iterator[None]:
    yield
    # Not `sentry_sdk.init(dsn=None)`: that would install the default integrations, which patch
    # Litestar for every later test.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.mark.usefixtures("sentry_off_afterwards")
def test_an_unhandled_error_is_reported_once_without_credentials(tmp_path: Path) -> None:
    path = tmp_path / "observatory.db"
    with receiver() as (base, received):
        dsn = base.replace("http://", "http://publickey@") + "/42"
        settings = make_settings(
            DatabaseSettings(sqlite_path=str(path)), observability=ObservabilitySettings(sentry_dsn=dsn)
        )
        headers = {**auth_headers(settings, "admin"), "X-Request-ID": "sentry-req-1", "Cookie": "session=s3cr3t"}
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            with sqlite3.connect(path) as owner:
                owner.execute("DROP TABLE traces")
            response = client.post(
                "/api/v1/traces/search",
                params={"x_private": "query-secret"},
                json={"filter": {"field": "model", "op": "eq", "value": "prompt-secret"}},
                headers=headers,
            )
            assert response.status_code in (400, 500)
            failing = client.get("/api/v1/traces", headers=headers)
            assert failing.status_code == 500
            sentry_sdk.flush(timeout=5)
        assert received.wait_for(1)
        assert not received.wait_for(2, timeout=1), "one error, one event"
    ((path_, _headers, body),) = received.requests
    assert path_ == "/api/42/envelope/"
    events = [json.loads(line) for line in body.splitlines()[1:] if line.startswith(b"{")]
    (event,) = [item for item in events if "exception" in item or "logentry" in item]
    assert event["tags"]["request_id"] == "sentry-req-1"
    frames = [frame for value in event["exception"]["values"] for frame in value["stacktrace"]["frames"]]
    assert frames
    assert not any("vars" in frame for frame in frames), "local variables may hold credentials"
    assert "request" not in event or "data" not in event["request"]
    text = body.decode()
    for secret in (headers["Authorization"].split()[-1], "s3cr3t", "prompt-secret", "query-secret"):
        assert secret not in text


def test_only_the_logging_and_dedupe_integrations_are_installed() -> None:
    # The Litestar integration would change how the app answers errors (500 for malformed JSON).
    from sentry_sdk.integrations import _installed_integrations

    assert "litestar" not in _installed_integrations
    assert "stdlib" not in _installed_integrations
