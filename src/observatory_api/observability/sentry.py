"""Sentry error reporting when `SENTRY_DSN` is set (the `sentry` extra); off otherwise.

Events come from error logs: errors.py logs every unhandled error once, with its traceback and
request id, and Sentry's logging integration turns that line into an event. Before an event
leaves, `scrub_event` tags it with the request id and removes what must never leave the service:
request bodies, query strings, cookies, and the Authorization, X-API-Key and Cookie headers.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from observatory_api import __version__
from observatory_api.observability.log_config import request_context
from observatory_api.settings import Settings
from observatory_api.settings.errors import ConfigError

SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie", "set-cookie"})
FILTERED = "[Filtered]"


def scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's `before_send`: add the request id tag, strip bodies and credentials."""
    context = request_context.get()
    if context is not None:
        event.setdefault("tags", {})["request_id"] = context.request_id
        if context.trace_id:
            event["tags"]["trace_id"] = context.trace_id
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: FILTERED if name.lower() in SENSITIVE_HEADERS else value for name, value in headers.items()
            }
        elif isinstance(headers, list):
            request["headers"] = [
                [name, FILTERED if str(name).lower() in SENSITIVE_HEADERS else value] for name, value in headers
            ]
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    # Breadcrumbs of log lines may quote anything; keep the message, drop their data.
    breadcrumbs = event.get("breadcrumbs")
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in values or []:
        if isinstance(crumb, dict):
            crumb.pop("data", None)
    return event


def setup_sentry(settings: Settings) -> bool:
    """Initialise the SDK for this process when a DSN is configured; True when it did."""
    dsn = settings.observability.sentry_dsn
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.dedupe import DedupeIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError:
        raise ConfigError("observability.sentry_dsn (SENTRY_DSN)", "needs the sentry extra") from None
    with warnings.catch_warnings():
        # sentry-sdk 2.7x deprecates send_default_pii (for data_collection); older releases read it.
        warnings.simplefilter("ignore", DeprecationWarning)
        _init(
            sentry_sdk, [LoggingIntegration(level=None, event_level=logging.ERROR), DedupeIntegration()], dsn, settings
        )
    return True


def _init(sentry_sdk: Any, integrations: list[Any], dsn: str, settings: Settings) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.environment,
        release=f"observatory-api@{__version__}",
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=scrub_event,
        # Errors only: no performance tracing (OpenTelemetry does that). No default or automatic
        # integrations: they patch Litestar, http.client and subprocess process-wide (and change
        # how Litestar answers errors); each unhandled error reaches Sentry once, via its log line.
        traces_sample_rate=0.0,
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=integrations,
    )
