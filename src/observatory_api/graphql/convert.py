"""`from_struct`: a GraphQL object from a repository's Struct, the fields of the same name copied.

GraphQL names a few Struct fields otherwise, the same way in every type: without the unit (the
schema's descriptions say it: `duration_ms` -> `duration`, `cost_usd` -> `cost`), and shorter
(`service_name` -> `service`, `total_tokens` -> `tokenCount`, `start_time` -> `timestamp`).
Each `of()` then names only what differs: ids, enums, JSON and lists.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from observatory_api.core.structs import copy_fields, field_names

T = TypeVar("T")
_SHORTER = {
    "service_name": "service",
    "total_tokens": "token_count",
    "start_time": "timestamp",
    "parent_span_id": "parent_id",
}
_UNITS = ("_usd", "_ms")
# (GraphQL type, Struct type) -> {GraphQL field: Struct field} where the names differ, computed once per pair.
_RENAMED: dict[tuple[type, type], dict[str, str]] = {}


def from_struct(cls: type[T], struct: msgspec.Struct, **values: Any) -> T:
    """`cls(...)` with every field `struct` has under the same (or the GraphQL) name, and `values` for the others."""
    return copy_fields(cls, struct, renamed=_renamed(cls, type(struct)), **values)


def graphql_name(field: str) -> str:
    if field in _SHORTER:
        return _SHORTER[field]
    for unit in _UNITS:
        if field.endswith(unit):
            return field.removesuffix(unit)
    return field


def _renamed(cls: type, struct_type: type[msgspec.Struct]) -> dict[str, str]:
    renamed = _RENAMED.get((cls, struct_type))
    if renamed is None:
        # Strawberry types are dataclasses; resolver fields are not constructor arguments.
        arguments = set(field_names(cls))
        renamed = _RENAMED[cls, struct_type] = {
            graphql_name(name): name
            for name in struct_type.__struct_fields__
            if graphql_name(name) in arguments - set(struct_type.__struct_fields__)
        }
    return renamed
