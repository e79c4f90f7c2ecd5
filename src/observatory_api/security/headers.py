"""Security headers on every response (404 and 500 included), from an app-level `before_send` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
    # Encoded once: this runs on every response, so it edits the raw header list in one pass
    # (Litestar's MutableScopeHeaders scans the whole list for each header set).
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fixed.items()]
    replaced = frozenset({name for name, _ in encoded} | {b"content-security-policy"})
    if not settings.enabled:
        encoded, replaced = [(b"server", SERVER.encode())], frozenset({b"server"})
    csp = {path: policy.encode("latin-1") for path, policy in DOCS_PAGE_CSP.items()}
    api_csp = API_CSP.encode("latin-1")

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        path = scope.get("path", "")
        headers = [(name, value) for name, value in message.get("headers") or () if name.lower() not in replaced]
        headers.extend(encoded)
        if settings.enabled:
            headers.append((b"content-security-policy", csp.get(path.rstrip("/") or "/", api_csp)))
        if path.startswith("/api/") and not any(name.lower() == b"cache-control" for name, _ in headers):
            # Credentials and per-caller data: never stored by shared caches unless a route says so.
            headers.append((b"cache-control", b"no-store"))
        message["headers"] = headers

    return add_security_headers
