"""`observatory-api keys create|list|revoke` and `token create`: operator tools on the owner database URL.

A new key is printed once, alone on stdout (`KEY=$(observatory-api keys create ...)` works); only
its hash is stored. Revoking drops the key's cached lookup from Redis (when `REDIS_URL` is set),
so it stops working at once; without Redis each worker's in-process cache forgets it within
`auth.api_key_cache_ttl_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from observatory_api.core.vocabulary import ROLES
from observatory_api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from observatory_api.security.api_keys import ApiKeyInfo

DEMO_KEY_NAME = "demo"
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def add_security_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys (needs the owner DATABASE_URL)")
    key_commands = keys.add_subparsers(title="keys commands")
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="what the key is for, e.g. grafana or ci")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--expires", help="a duration (30d, 12h, 90m) or an RFC 3339 time; default never")
    create.set_defaults(run=_keys_create)
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(run=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by id or prefix, at once")
    revoke.add_argument("key", help="the key's id or prefix (see keys list)")
    revoke.set_defaults(run=_keys_revoke)

    token = commands.add_parser("token", help="mint JWTs for bootstrapping")
    token_commands = token.add_subparsers(title="token commands")
    mint = token_commands.add_parser("create", help="print an access token signed with the configured key")
    mint.add_argument("--sub", required=True, help="the subject (who the token is for)")
    mint.add_argument("--role", required=True, choices=ROLES)
    mint.add_argument("--ttl", type=int, help="lifetime in seconds, at most auth.access_ttl_seconds (its default)")
    mint.set_defaults(run=_token_create)


def parse_expiry(value: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    if match := _DURATION.match(value):
        return now + timedelta(**{_UNITS[match.group("unit")]: int(match.group("n"))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--expires: not a duration or an RFC 3339 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.db.engine import migrated_owner_engine
    from observatory_api.security.api_keys import ApiKeyAdmin, secret_key_of

    try:
        expires = parse_expiry(args.expires) if args.expires else None
    except argparse.ArgumentTypeError as exc:
        print(f"observatory-api: {exc}", file=sys.stderr)
        return 2
    if expires is not None and expires <= datetime.now(UTC):
        print("observatory-api: --expires is in the past", file=sys.stderr)
        return 2

    async def run() -> tuple[str, ApiKeyInfo]:
        engine = await migrated_owner_engine(settings.database)
        try:
            return await ApiKeyAdmin(engine).create(
                name=args.name, role=args.role, secret_key=secret_key_of(settings), expires_at=expires
            )
        finally:
            await engine.dispose()

    raw, info = asyncio.run(run())
    print(
        f"observatory-api: created API key {info.id} ({info.role}, prefix {info.prefix}, "
        f"expires {info.expires_at.isoformat() if info.expires_at else 'never'}); "
        "it is shown only now:",
        file=sys.stderr,
    )
    print(raw, flush=True)
    return 0


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.db.engine import migrated_owner_engine
    from observatory_api.security.api_keys import ApiKeyRepository

    async def run() -> list[ApiKeyInfo]:
        engine = await migrated_owner_engine(settings.database)
        try:
            return await ApiKeyRepository(engine).list_keys()
        finally:
            await engine.dispose()

    keys = asyncio.run(run())
    print(f"{'id':32}  {'prefix':12}  {'role':9}  {'state':7}  {'expires':25}  {'last used':25}  name")
    for key in keys:
        state = "active" if key.active else ("revoked" if key.revoked_at else "expired")
        expires = key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never"
        used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
        print(f"{key.id:32}  {key.prefix:12}  {key.role:9}  {state:7}  {expires:25}  {used:25}  {key.name}")
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.db.engine import migrated_owner_engine
    from observatory_api.security.api_keys import ApiKeyAdmin

    async def run() -> ApiKeyInfo | None:
        engine = await migrated_owner_engine(settings.database)
        try:
            info = await ApiKeyAdmin(engine).revoke(args.key)
        finally:
            await engine.dispose()
        if info is not None:
            await drop_cached_keys(settings, [info.prefix])
        return info

    info = asyncio.run(run())
    if info is None:
        print(f"observatory-api: no API key with id or prefix {args.key!r}", file=sys.stderr)
        return 1
    print(f"observatory-api: revoked API key {info.id} (prefix {info.prefix}, {info.name})")
    if not settings.redis.configured:
        # The server's cached lookup is out of this command's reach: say so, not "at once".
        ttl = settings.auth.api_key_cache_ttl_seconds
        print(
            f"observatory-api: WARNING: no REDIS_URL in this shell, so no cached lookup was dropped: a running "
            f"server still accepts this key for up to {ttl} s (auth.api_key_cache_ttl_seconds), from Redis or "
            "from its workers' memory. Run keys revoke with the server's REDIS_URL to end it at once in Redis; "
            f"a server without Redis stops accepting it within {ttl} s.",
            file=sys.stderr,
        )
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.security.tokens import TokenService

    longest = settings.auth.access_ttl_seconds
    if args.ttl is not None and not 0 < args.ttl <= longest:
        # The API refuses access tokens that live longer than it issues them for.
        print(
            f"observatory-api: --ttl must be between 1 and {longest} seconds (auth.access_ttl_seconds), got {args.ttl}",
            file=sys.stderr,
        )
        return 2
    issued = TokenService.from_settings(settings).issue(subject=args.sub, role=args.role, kind="access", ttl=args.ttl)
    print(issued.token, flush=True)
    return 0


async def drop_cached_keys(settings: Settings, prefixes: list[str]) -> None:
    """Forget cached lookups in Redis, so that a revocation takes effect at once."""
    if not prefixes:
        return
    from redis.exceptions import RedisError

    from observatory_api.redis_client import open_redis

    connection = open_redis(settings.redis, timeout=2)
    if connection is None:
        return
    try:
        await connection.client.delete(*(f"{settings.redis.key_prefix}:auth:apikey:{prefix}" for prefix in prefixes))
    except (RedisError, OSError) as exc:
        print(
            f"observatory-api: warning: could not reach Redis ({exc.__class__.__name__}); cached lookups expire "
            f"within {settings.auth.api_key_cache_ttl_seconds} s",
            file=sys.stderr,
        )
    finally:
        await connection.aclose()


DEMO_INGEST_KEY_NAME = "demo-ingest"


async def create_demo_key(
    engine: AsyncEngine, settings: Settings, *, role: str = "developer", name: str = DEMO_KEY_NAME
) -> str:
    """A fresh developer key for the demo database: the previous demo key is revoked (only hashes
    are stored, so an old key cannot be shown again)."""
    from observatory_api.security.api_keys import ApiKeyAdmin, secret_key_of

    admin = ApiKeyAdmin(engine)
    await drop_cached_keys(settings, await admin.revoke_named(name))
    raw, _ = await admin.create(name=name, role=role, secret_key=secret_key_of(settings))
    return raw
