"""Opaque keyset cursors, shared by REST and GraphQL.

A cursor carries the sort, the last row's sort key, the time window of the first page (so that
a walk stays on one window while new rows arrive) and a fingerprint of the other filters (so that
a cursor cannot be replayed against a different query).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from observatory_api.core.errors import InvalidInput
from observatory_api.core.query import check_time

KeyValue = str | int | float | None


R = TypeVar("R", covariant=True)


class Page(Protocol, Generic[R]):
    """A page of a keyset walk, as every list's repository returns it (`TracePage`, `SpanPage`, ...)."""

    @property
    def data(self) -> Sequence[R]: ...
    @property
    def next_cursor(self) -> str | None: ...
    @property
    def has_more(self) -> bool: ...


class Cursor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sort: str
    key: list[KeyValue]
    window_from: datetime
    window_to: datetime
    fingerprint: str


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, *, sort: str, fingerprint: str, key_length: int) -> Cursor:
    """Decode and check a client's cursor; any mismatch is a 400 naming the `cursor` field."""
    if len(token) > 2048:
        raise InvalidInput.field("cursor", "is too long", "query")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidInput.field("cursor", "is not a cursor this service issued", "query") from None
    if cursor.sort != sort or len(cursor.key) != key_length:
        raise InvalidInput.field("cursor", f"was issued for another sort order, not {sort!r}", "query")
    if cursor.fingerprint != fingerprint:
        raise InvalidInput.field("cursor", "was issued for different filters; restart without a cursor", "query")
    # A cursor is not signed: what it carries is checked like any other input.
    try:
        window_from, window_to = check_time(cursor.window_from, "cursor"), check_time(cursor.window_to, "cursor")
    except InvalidInput:
        raise _not_ours() from None
    if window_from >= window_to:
        raise _not_ours()
    return msgspec.structs.replace(cursor, window_from=window_from, window_to=window_to)


def _not_ours() -> InvalidInput:
    return InvalidInput.field("cursor", "is not a cursor this service issued", "query")


def fingerprint(filters: Mapping[str, Any]) -> str:
    """A short, stable hash of the filters that must not change between pages."""
    canonical = msgspec.json.encode({k: filters[k] for k in sorted(filters)})
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()
