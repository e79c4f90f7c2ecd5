"""The effective settings with their secrets masked, for `config check`."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from observatory_api.settings.sections import Settings

SECRET_KEYS = frozenset(
    {
        "database.readonly_password",
        "redis.password",
        "redis.sentinel.password",
        "auth.jwt_secret",
        "auth.secret_key",
        "observability.sentry_dsn",
    }
)
URL_KEYS = frozenset({"database.url", "redis.url"})
URL_LIST_KEYS = frozenset({"database.replica_urls"})


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret masked, for `config check`."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    for key in SECRET_KEYS:
        *parents, leaf = key.split(".")
        section = data
        for part in parents:
            section = section[part]
        if section.get(leaf):
            section[leaf] = "***"
    for key in URL_KEYS:
        name, leaf = key.split(".")
        if data[name].get(leaf):
            data[name][leaf] = mask_url(data[name][leaf])
    for key in URL_LIST_KEYS:
        name, leaf = key.split(".")
        data[name][leaf] = [mask_url(url) for url in data[name][leaf]]
    return data


def mask_url(url: str) -> str:
    """Hide the password in `scheme://user:password@host/...`."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
