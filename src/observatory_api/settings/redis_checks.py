"""Checks on the Redis Sentinel settings, and the one parser of a Sentinel's `host:port`.

Every problem is returned as (key, reason), so that start-up and `config check` report them all
at once, like the rest of the configuration (checks.settings_problems).
"""

from __future__ import annotations

from observatory_api.settings.sections import RedisSettings

HOSTS_KEY = "redis.sentinel.hosts (REDIS_SENTINELS)"
MASTER_KEY = "redis.sentinel.master_name (REDIS_SENTINEL_MASTER)"


def sentinel_address(host: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6) as a (host, port) pair; ValueError names what is wrong."""
    name, colon, port_text = host.strip().rpartition(":")
    name = name.removeprefix("[").removesuffix("]")
    if not colon or not name or not port_text.isdigit():
        raise ValueError(f"`{host}` is not host:port (e.g. 10.0.0.5:26379)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"`{host}`: the port must be between 1 and 65535")
    return name, port


def sentinel_problems(redis: RedisSettings) -> list[tuple[str, str]]:
    sentinel = redis.sentinel
    problems: list[tuple[str, str]] = []
    for host in sentinel.hosts:
        try:
            sentinel_address(host)
        except ValueError as exc:
            problems.append((HOSTS_KEY, str(exc)))
    if sentinel.hosts and not sentinel.master_name:
        problems.append((MASTER_KEY, "is required with redis.sentinel.hosts: the name the Sentinels monitor"))
    if sentinel.master_name and not sentinel.hosts:
        problems.append((HOSTS_KEY, "is required with redis.sentinel.master_name: the Sentinels to ask"))
    if sentinel.hosts and redis.url is not None:
        problems.append(
            (
                "redis.url (REDIS_URL)",
                "set either redis.url or redis.sentinel.hosts, not both: the Sentinels name the primary",
            )
        )
    if sentinel.password is not None and not sentinel.hosts:
        problems.append(("redis.sentinel.password (REDIS_SENTINEL_PASSWORD)", "is set but redis.sentinel.hosts is not"))
    return problems
