"""Security headers on every response (404 and 500 included), from an app-level `before_send` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from observatory_api.settings import SecurityHeadersSettings

SERVER = "observatory-api"
# The API returns JSON only: nothing may load, frame or submit anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and Redoc (and later the GraphQL playground) run inline bootstrap code and load
# their bundles, styles and fonts from these CDNs; nothing else.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://unpkg.com; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://unpkg.com https://fonts.googleapis.com; "
    "img-src 'self' data: https://cdn.jsdelivr.net https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; "
    "connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PREFIXES = ("/schema", "/graphql")

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
            path = scope.get("path", "")
            headers["content-security-policy"] = DOCS_CSP if path.startswith(DOCS_PREFIXES) else API_CSP
        else:
            headers["server"] = SERVER
        if "cache-control" not in headers and scope.get("path", "").startswith("/api/"):
            # Credentials and per-caller data: never stored by shared caches unless a route says so.
            headers["cache-control"] = "no-store"

    return add_security_headers
