"""Security headers on every response (404 and 500 included), from an app-level `before_send` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from observatory_api.core.vocabulary import GRAPHIQL_PATH
from observatory_api.settings import SecurityHeadersSettings

SERVER = "observatory-api"
# The API returns JSON only: nothing may load, frame or submit anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The documentation pages load every script from the service itself (`docs_pages`) and have no
# inline script; each policy allows what its page loads and nothing else. Every other response,
# the pages' assets included (a script's own CSP does not apply to it), gets API_CSP.
_DOCS = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Swagger UI: its stylesheet, inline SVG icons, and style attributes React sets.
SWAGGER_CSP = f"{_DOCS}; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
# Redoc: styled-components writes <style> elements; its search runs in a worker made from a blob.
REDOC_CSP = f"{_DOCS}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src blob:"
# GraphiQL: its stylesheet, CodeMirror's inline styles, and the fonts and icons its CSS embeds.
GRAPHIQL_CSP = f"{_DOCS}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:"
DOCS_PAGE_CSP = {
    "/schema": SWAGGER_CSP,  # the first render plugin answers the bare schema path too
    "/schema/swagger": SWAGGER_CSP,
    "/schema/redoc": REDOC_CSP,
    GRAPHIQL_PATH: GRAPHIQL_CSP,
}

SendHook = Callable[[Message, Scope], Awaitable[None]]


def security_headers_hook(settings: SecurityHeadersSettings) -> SendHook:
    fixed = {
        "strict-transport-security": f"max-age={settings.hsts_max_age}; includeSubDomains",
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        # "0" disables the legacy XSS auditor, which can itself be abused (OWASP's advice); CSP protects.
        "x-xss-protection": "0",
        "referrer-policy": settings.referrer_policy,
        "cross-origin-opener-policy": "same-origin",
        "server": SERVER,
    }

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        if "server" in headers:
            del headers["server"]
        if settings.enabled:
            for name, value in fixed.items():
                headers[name] = value
            path = scope.get("path", "").rstrip("/") or "/"
            headers["content-security-policy"] = DOCS_PAGE_CSP.get(path, API_CSP)
        else:
            headers["server"] = SERVER
        if "cache-control" not in headers and scope.get("path", "").startswith("/api/"):
            # Credentials and per-caller data: never stored by shared caches unless a route says so.
            headers["cache-control"] = "no-store"

    return add_security_headers
