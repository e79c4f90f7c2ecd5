"""Shapes of `/api/v1/auth/*` and `/api/v1/admin/*`."""

from __future__ import annotations

from typing import Literal

import msgspec

from observatory_api.security.api_keys import ApiKeyInfo


class TokenPair(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105  (OAuth 2 field name, not a secret)
    expires_in: int
    refresh_expires_in: int


class RefreshRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    refresh_token: str = msgspec.field()


class Limits(msgspec.Struct, kw_only=True):
    enabled: bool
    window_seconds: int
    requests: int
    endpoints: dict[str, int]


class Me(msgspec.Struct, kw_only=True):
    subject: str
    role: str
    kind: Literal["jwt", "api_key"]
    key_id: str | None
    permissions: list[str]
    expires_at: int | None
    content_redacted: bool
    rate_limit: Limits


class ApiKeyList(msgspec.Struct):
    data: list[ApiKeyInfo]


class CachePurged(msgspec.Struct):
    purged: bool
