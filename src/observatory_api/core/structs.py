"""`copy_fields`: build a Struct (or a dataclass) from another object, the fields of the same name copied.

For the places that turn one record into another (a stored row into what an endpoint returns, an
input type into the checked filters): the call then names only the fields that differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
_NO_RENAMES: Mapping[str, str] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The constructor's field names of a Struct or a dataclass (a dataclass's `init=False` fields left out)."""
    if issubclass(cls, msgspec.Struct):
        return cls.__struct_fields__
    return tuple(field.name for field in dataclasses.fields(cls) if field.init)  # type: ignore[arg-type]


def copy_fields(cls: type[T], source: object, *, renamed: Mapping[str, str] = _NO_RENAMES, **values: Any) -> T:
    """`cls(...)` with `values`, and every other field of `cls` read from `source`: under the same
    name, or under `renamed[field]`. A field `source` lacks is left to its default."""
    # A Struct gives its fields only (not its methods); a row or another object, any attribute.
    has = source.__struct_fields__.__contains__ if isinstance(source, msgspec.Struct) else partial(hasattr, source)
    for name in field_names(cls):
        if name not in values and has(attribute := renamed.get(name, name)):
            values[name] = getattr(source, attribute)
    return cls(**values)
