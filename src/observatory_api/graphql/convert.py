"""`from_struct`: a GraphQL object from a repository's Struct, the fields of the same name copied.

Each `of()` then names only what differs: renamed fields (`span_id` -> `id`), enums, JSON and lists.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
# (GraphQL type, Struct type) -> the field names they share, computed once per pair.
_SHARED: dict[tuple[type, type], tuple[str, ...]] = {}


def from_struct(cls: type[T], struct: msgspec.Struct, **values: Any) -> T:
    """`cls(...)` with every field `struct` has under the same name, and `values` for the others."""
    copied = {name: getattr(struct, name) for name in _shared_fields(cls, type(struct)) if name not in values}
    return cls(**copied, **values)


def _shared_fields(cls: type, struct_type: type[msgspec.Struct]) -> tuple[str, ...]:
    names = _SHARED.get((cls, struct_type))
    if names is None:
        # Strawberry types are dataclasses; resolver fields are not constructor arguments.
        arguments = {field.name for field in dataclasses.fields(cls) if field.init}
        names = _SHARED[cls, struct_type] = tuple(n for n in struct_type.__struct_fields__ if n in arguments)
    return names
