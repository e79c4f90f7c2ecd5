"""CORS: Litestar's origin checks and preflight answers, with `Origin` added to `Vary`, not put in its place.

Litestar's middleware answers an allowed origin with `Vary: Origin`, replacing the response's own
`Vary` (the cache's `Authorization, X-API-Key, Accept-Encoding`, or compression's
`Accept-Encoding`): a cache would then serve one caller's (or one encoding's) response to another.
This subclass lets Litestar do everything else and merges the two lists.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders

# Litestar 2 keeps the class internal (the public alias is deprecated); tests/integration/security/
# test_http_hardening.py checks the Vary merge and the preflights, so a move shows at once.
from litestar.middleware._internal.cors import CORSMiddleware
from litestar.types import Message, Send

from observatory_api.settings import CorsSettings

ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "X-Request-ID", "If-None-Match"]
EXPOSE_HEADERS = ["X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]


class VaryMergingCORSMiddleware(CORSMiddleware):
    def send_wrapper(self, send: Send, origin: str, has_cookie: bool) -> Send:
        own_vary: list[str] = []

        async def merge_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                added = headers.getall("vary", [])
                if own_vary and added:
                    headers["vary"] = merged_vary(own_vary + added)
            await send(message)

        litestar_send = super().send_wrapper(send=merge_vary, origin=origin, has_cookie=has_cookie)

        async def remember_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                own_vary[:] = MutableScopeHeaders.from_message(message).getall("vary", [])
            await litestar_send(message)

        return remember_vary


def merged_vary(values: list[str]) -> str:
    """One `Vary` value from several: every name once (case-insensitively), first spelling kept."""
    names: dict[str, str] = {}
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if name:
                names.setdefault(name.lower(), name)
    return "*" if "*" in names else ", ".join(names.values())


def cors_config(settings: CorsSettings) -> CORSConfig:
    return CORSConfig(
        allow_origins=list(settings.origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        allow_credentials=settings.allow_credentials and "*" not in settings.origins,
        max_age=settings.max_age,
    )


def install_cors(app: Litestar, settings: CorsSettings) -> None:
    """Wrap the exception-handled router, where Litestar puts its own CORS middleware (so 404s,
    405s and errors carry the CORS headers too); `create_app` passes no `cors_config`."""
    app.asgi_handler = VaryMergingCORSMiddleware(app=app.asgi_handler, config=cors_config(settings))
