"""What Sentry receives: the request id, never bodies or credentials."""

from __future__ import annotations

from observatory_api.observability.log_config import RequestContext, request_context
from observatory_api.observability.sentry import FILTERED, scrub_event


def _event() -> dict[str, object]:
    return {
        "request": {
            "url": "http://api/api/v1/traces?q=secret+prompt",
            "method": "POST",
            "query_string": "q=secret+prompt",
            "data": {"prompt": "tell me a secret"},
            "cookies": {"session": "abc"},
            "headers": {
                "Authorization": "Bearer eyJ.secret",
                "X-API-Key": "obs_live_secret",
                "Cookie": "session=abc",
                "User-Agent": "curl/8",
            },
            "env": {"REMOTE_ADDR": "10.0.0.1"},
        },
        "breadcrumbs": {"values": [{"message": "query", "data": {"params": ["secret"]}}]},
    }


def test_bodies_credentials_and_queries_are_removed_and_the_request_id_added() -> None:
    token = request_context.set(RequestContext(request_id="req-42"))
    try:
        event = scrub_event(_event())
    finally:
        request_context.reset(token)
    request = event["request"]
    assert isinstance(request, dict)
    assert not {"data", "cookies", "query_string", "env"} & set(request)
    assert request["url"] == "http://api/api/v1/traces"
    assert request["headers"] == {
        "Authorization": FILTERED,
        "X-API-Key": FILTERED,
        "Cookie": FILTERED,
        "User-Agent": "curl/8",
    }
    assert event["tags"] == {"request_id": "req-42"}
    assert "secret" not in repr(event)


def test_header_lists_are_scrubbed_too() -> None:
    event = scrub_event({"request": {"headers": [["authorization", "Bearer x"], ["accept", "*/*"]]}})
    assert event["request"] == {"headers": [["authorization", FILTERED], ["accept", "*/*"]]}


def test_events_outside_a_request_pass() -> None:
    assert scrub_event({"message": "startup failed"}) == {"message": "startup failed"}
