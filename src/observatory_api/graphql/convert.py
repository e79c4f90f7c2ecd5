"""`from_struct`: a GraphQL object from a repository's Struct, the fields of the same name copied.

GraphQL names a few Struct fields otherwise, the same way in every type: without the unit (the
schema's descriptions say it: `duration_ms` -> `duration`, `cost_usd` -> `cost`), and shorter
(`service_name` -> `service`, `total_tokens` -> `tokenCount`, `start_time` -> `timestamp`).
Each `of()` then names only what differs: ids, enums, JSON and lists. `mirrored` spares a type
that has every field of a Struct from spelling them again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
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


def mirrored(
    struct_type: type[msgspec.Struct],
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    first: Collection[str] = (),
    **renamed: str,
) -> Callable[[type[T]], type[T]]:
    """Under `@strawberry.type` or `@strawberry.input`: the class gets every field of `struct_type`
    (or those in `only`, less `exclude`), in its order, under the GraphQL name (`graphql_name`, or
    `renamed[struct_field]`), with the Struct's default where it has one. The class declares only
    what its resolvers read or what GraphQL types or describes otherwise; its declaration wins.
    Fields of the class that the Struct lacks follow the Struct's, except those named in `first`."""

    def mirror(cls: type[T]) -> type[T]:
        own: dict[str, Any] = dict(inspect.get_annotations(cls))
        fields = [
            f for f in msgspec.structs.fields(struct_type) if (only is None or f.name in only) and f.name not in exclude
        ]
        names = {renamed.get(f.name) or graphql_name(f.name): f for f in fields}
        for name, field in names.items():
            if name not in own and field.default is not msgspec.NODEFAULT:
                setattr(cls, name, field.default)
        leading = {name: own.pop(name) for name in first}
        mirrored_fields = {name: own.pop(name, field.type) for name, field in names.items()}
        cls.__annotations__ = leading | mirrored_fields | own
        return cls

    return mirror


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
