"""The checks on settings that depend on where the service runs: secrets, CORS origins, workers.

Each function returns every problem it finds as (key, reason), so that start-up and
`config check` report them all at once; `checks.validate_settings` raises them together.

- Secrets (`JWT_SECRET`, `SECRET_KEY`, see secret_rules.py) are held to the rule in staging and
  production, with `config check --production`, and in development or test too when the server
  listens on an address other than loopback: the development placeholders are public, so a
  reachable server signing with them hands out admin tokens to anyone who reads the source.
- Staging and production also refuse sample passwords (e.g. `.env.example`'s `changeme`) in the
  database and Redis settings.
- The production checklist adds: explicit CORS origins (no `*`, no `null`), no GraphQL playground
  or introspection, rate limits on, PostgreSQL, and Redis whenever more than one worker serves.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlsplit

from observatory_api.settings.secret_rules import is_sample, secret_weakness
from observatory_api.settings.sections import Settings

Problem = tuple[str, str]
SIGNING_KEY_NAME = "auth.jwt_secret (JWT_SECRET)"
HASHING_KEY_NAME = "auth.secret_key (SECRET_KEY)"
WORKERS_KEY = "server.workers (API_WORKERS, serve --workers)"
CORS_KEY = "cors.origins (CORS_ORIGINS)"
# scheme://host[:port], as browsers send it in `Origin`: no path, no trailing slash.
_ORIGIN_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def environment_problems(settings: Settings, *, production_checklist: bool = False) -> list[Problem]:
    """Every problem of `settings` for where they run (all environments; see the module docstring)."""
    production = production_checklist or settings.is_production
    problems = cors_problems(settings.cors.origins, production=production)
    secrets_needed = _why_secrets_are_needed(settings, production=production)
    if secrets_needed is not None:
        problems += secret_problems(settings, why=secrets_needed)
    if production or settings.environment == "staging":
        problems += password_problems(settings)
    if production:
        problems += production_problems(settings)
    return problems


def _why_secrets_are_needed(settings: Settings, *, production: bool) -> str | None:
    if production:
        return "in production"
    if settings.environment == "staging":
        return "when ENVIRONMENT=staging"
    host = settings.server.host
    if not is_loopback(host):
        return (
            f"when the server listens on {host}, not a loopback address: the development placeholders "
            "are public and would let anyone forge tokens (or listen on 127.0.0.1)"
        )
    return None


def secret_problems(settings: Settings, *, why: str) -> list[Problem]:
    """JWT_SECRET (unless RS256/ES256 key files sign) and SECRET_KEY: set, strong and distinct."""
    auth = settings.auth
    signs_with_secret = auth.algorithm.startswith("HS")
    named = [(HASHING_KEY_NAME, auth.secret_key)]
    if signs_with_secret:
        named.insert(0, (SIGNING_KEY_NAME, auth.jwt_secret))
    problems: list[Problem] = []
    for key, secret in named:
        if not secret:
            problems.append((key, f"is required {why}"))
        elif (weakness := secret_weakness(secret)) is not None:
            problems.append((key, weakness))
    if signs_with_secret and auth.jwt_secret and auth.jwt_secret == auth.secret_key:
        problems.append(
            (
                SIGNING_KEY_NAME,
                "must differ from SECRET_KEY: one leaked value would both forge tokens and match key hashes",
            )
        )
    return problems


def password_problems(settings: Settings) -> list[Problem]:
    """Sample passwords (`changeme`, ...) in the database and Redis settings."""
    candidates = [
        ("database.url (DATABASE_URL)", _url_password(settings.database.url)),
        ("database.readonly_password (DB_READONLY_PASSWORD)", settings.database.readonly_password),
        ("redis.url (REDIS_URL)", _url_password(settings.redis.url)),
        ("redis.password (REDIS_PASSWORD)", settings.redis.password),
        ("redis.sentinel.password (REDIS_SENTINEL_PASSWORD)", settings.redis.sentinel.password),
    ]
    return [
        (key, "holds a sample password (such as .env.example's `changeme`); set the real one")
        for key, password in candidates
        if password and is_sample(password)
    ]


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def cors_problems(origins: tuple[str, ...], *, production: bool) -> list[Problem]:
    """Origins browsers can actually send; in production no wildcard and no `null`."""
    problems: list[Problem] = []
    malformed = [o for o in origins if o not in ("*", "null") and "*" not in o and not _ORIGIN_RE.match(o)]
    if malformed:
        problems.append(
            (
                CORS_KEY,
                f"{', '.join(malformed)}: an origin is scheme://host[:port] with no path, e.g. https://app.example.com",
            )
        )
    if production and any("*" in origin for origin in origins):
        problems.append((CORS_KEY, "a wildcard origin is refused in production; list the origins"))
    if production and any(origin.lower() == "null" for origin in origins):
        problems.append(
            (
                CORS_KEY,
                "`null` is refused in production: sandboxed frames and local files send it, "
                "so any page could read the API",
            )
        )
    return problems


def production_problems(settings: Settings) -> list[Problem]:
    """The production checklist beyond secrets and passwords."""
    problems: list[Problem] = []
    if settings.graphql.playground:
        problems.append(("graphql.playground (GRAPHQL_PLAYGROUND)", "must be false in production"))
    if settings.graphql.enabled and settings.graphql.introspection:
        problems.append(("graphql.introspection (GRAPHQL_INTROSPECTION)", "must be false in production"))
    if not settings.rate_limit.enabled:
        problems.append(("rate_limit.enabled (RATE_LIMIT_ENABLED)", "must be true in production"))
    if settings.database.url is None:
        problems.append(("database.url (DATABASE_URL)", "production needs PostgreSQL, not the embedded SQLite file"))
    if settings.server.workers > 1 and not settings.redis.configured:
        problems.append(
            (
                WORKERS_KEY,
                f"{settings.server.workers} workers need REDIS_URL in production: without it each worker "
                "counts its own rate limits and caches API-key lookups on its own (a revoked key lingers); "
                "set REDIS_URL (or REDIS_SENTINELS) or run one worker",
            )
        )
    return problems
