"""The outermost ASGI layer: request metrics, the access log line and the request context.

It wraps everything Litestar does for a request (routing, CORS, authentication, rate limits,
exception handling), so it sees the status the client really received: a 401 or 429 written by a
middleware, a 404 for a path no route matches, a 500 from the exception handler. Labels are
bounded: the route *template* Litestar matched (`/api/v1/traces/{trace_id}`), `unmatched` when
none did, the method (unknown methods become `OTHER`), the status class and the caller's role.

Health probes (`/alive`, `/ready`, `/health`) are left out of the request metrics and logged at
DEBUG: orchestrators call them every few seconds, which would drown the traffic they describe.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from observatory_api.core.vocabulary import PROBE_PATHS
from observatory_api.observability import metrics
from observatory_api.observability.log_config import RequestContext, request_context
from observatory_api.observability.request_id import request_id

UNMATCHED = "unmatched"
ANONYMOUS = "anonymous"
OTHER_ROLE = "other"
HEALTH_ROUTES = frozenset(PROBE_PATHS)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_LOGGED_PATH = 200
# A client that went away before the answer (nginx's convention): not a server error.
CLIENT_CLOSED = 499
_TYPED_PARAMETER = re.compile(r"\{(\w+):[^}]*\}")

# The request counter, duration histogram and REST counter children of one label combination.
_Children = tuple[Any, Any, Any | None]

access_logger = logging.getLogger("observatory_api.access")
logger = logging.getLogger("observatory_api.observability")


class SpanHooks(Protocol):
    """What the middleware asks of tracing, when tracing is on (observability/tracing.py)."""

    def current_trace_id(self) -> str | None: ...

    def name_current_span(self, method: str, route: str, request_id: str) -> None: ...


def route_template(scope: Scope) -> str:
    """The matched route's template with parameter types removed, or `unmatched`."""
    template = scope.get("path_template") if scope.get("route_handler") is not None else None
    if not template:
        return UNMATCHED
    return _untyped(template)


@functools.lru_cache(maxsize=1024)
def _untyped(template: str) -> str:
    # Route templates are few (one per route), so the regex runs once per template, not per request.
    return _TYPED_PARAMETER.sub(r"{\1}", template)


def role_of(scope: Scope, known_roles: frozenset[str]) -> str:
    """The caller's role from the authenticated user (`scope["user"]`), bounded to the known roles."""
    user = scope.get("user")
    if user is None:
        return ANONYMOUS
    role = user.get("role") if isinstance(user, dict) else getattr(user, "role", None)
    role = getattr(role, "value", role)  # an Enum member
    return role if isinstance(role, str) and role in known_roles else OTHER_ROLE


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_prefix: str,
        known_roles: frozenset[str],
        span_hooks: SpanHooks | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.api_prefix = api_prefix.rstrip("/")
        self.known_roles = known_roles
        self.span_hooks = span_hooks
        self.clock = clock
        self._labelled: dict[tuple[str, str, str, str, bool], _Children] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        trace_id = self.span_hooks.current_trace_id() if self.span_hooks else None
        token = request_context.set(RequestContext(request_id=rid, trace_id=trace_id))
        status: int | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.span_hooks is not None:
                    # Now, while the server span is open: it ends with the last body chunk.
                    self.span_hooks.name_current_span(_method(scope), route_template(scope), rid)
            await send(message)

        started = self.clock()
        metrics.http_requests_in_flight.inc()
        try:
            await self.app(scope, receive, observed_send)
        except asyncio.CancelledError:
            status = status or CLIENT_CLOSED
            raise
        except BaseException:
            # Litestar answers every exception itself; one escaping here came after the response
            # started (the client got a truncated body) or from the server machinery.
            logger.exception("request failed after the response started" if status else "request failed")
            status = status or 500
            raise
        finally:
            metrics.http_requests_in_flight.dec()
            self._record(scope, rid, status or 500, self.clock() - started)
            request_context.reset(token)

    def _children(self, method: str, route: str, klass: str, role: str, rest: bool) -> _Children:
        """The labelled metric children of one combination, looked up once (`labels()` takes a
        lock and builds a key on each call). Bounded: every label is from a bounded set."""
        key = (method, route, klass, role, rest)
        children = self._labelled.get(key)
        if children is None:
            children = (
                metrics.http_requests_total.labels(method=method, route=route, status_class=klass, role=role),
                metrics.http_request_duration_seconds.labels(method=method, route=route),
                metrics.api_rest_requests_total.labels(method=method, route=route, status_class=klass)
                if rest
                else None,
            )
            self._labelled[key] = children
        return children

    def _record(self, scope: HTTPScope, rid: str, status: int, seconds: float) -> None:
        method = _method(scope)
        route = route_template(scope)
        role = role_of(scope, self.known_roles)
        klass = status_class(status)
        health = route in HEALTH_ROUTES
        if not health:
            rest = _under(scope.get("path", ""), self.api_prefix)
            total, duration, rest_total = self._children(method, route, klass, role, rest)
            total.inc()
            duration.observe(seconds)
            if rest_total is not None:
                rest_total.inc()
        level = logging.DEBUG if health else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        path = scope.get("path", "")
        access_logger.log(
            level,
            "%s %s %s",
            method,
            route,
            status,
            extra={
                "request_id": rid,
                "method": method,
                "route": route,
                # The path without its query string: queries may hold search text from prompts.
                "path": path[:MAX_LOGGED_PATH],
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "role": role,
            },
        )


def _method(scope: HTTPScope) -> str:
    method = scope.get("method", "GET").upper()
    return method if method in METHODS else "OTHER"


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def install_middleware(app: Any, **options: Any) -> None:
    """Wrap the app's whole request pipeline (inside `Litestar.__call__`, so the `before_send`
    hooks and the request id header still apply, outside CORS and exception handling)."""
    app.asgi_handler = ObservabilityMiddleware(app.asgi_handler, **options)
