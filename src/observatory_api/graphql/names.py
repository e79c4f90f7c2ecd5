"""With introspection off, error messages name only what the request itself named.

graphql-core's validation and variable errors name schema parts the client never wrote: "Did you
mean" suggestions (fields, arguments, input fields, enum values, types), the parent type of an
unknown field, the required argument or input field that is missing, the enum of a wrong value.
Each of those would reveal the schema that disabled introspection hides, so a message loses its
suggestions, and every name of the schema in it that the request did not contain (in its query
text, operation name or variables) is replaced by HIDDEN. The error keeps its location in the query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

HIDDEN = "(not shown)"
# The specification's scalars are no secret of this schema.
BUILT_IN = frozenset({"Int", "Float", "String", "Boolean", "ID"})
_IDENTIFIER = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_QUOTED = re.compile(r"'([^']*)'")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# Type names outside quotes ("non-nullable field Trace.spans", "cannot represent a DateTime").
_BARE_TYPE = re.compile(r"\b[A-Z][_0-9A-Za-z]*(?:\.[_A-Za-z][_0-9A-Za-z]*)?\b")
_MAX_VARIABLE_DEPTH = 64


class SchemaNames:
    """Every name a schema defines, to be kept out of messages unless the request used it."""

    def __init__(self, schema: GraphQLSchema) -> None:
        names: set[str] = set()
        types: set[str] = set()
        for name, type_ in schema.type_map.items():
            if name.startswith("__") or name in BUILT_IN:
                continue
            types.add(name)
            if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
                for field_name, field in type_.fields.items():
                    names.add(field_name)
                    names.update(field.args)
            elif isinstance(type_, GraphQLInputObjectType):
                names.update(type_.fields)
            elif isinstance(type_, GraphQLEnumType):
                names.update(type_.values)
        self.types = frozenset(types)
        self.names = frozenset(names | types)

    def hide(self, message: str, named: frozenset[str]) -> str:
        message = _SUGGESTION.sub("", message)

        def quoted(match: re.Match[str]) -> str:
            return HIDDEN if self._reveals(_IDENTIFIER.findall(match.group(1)), named) else match.group(0)

        def bare(match: re.Match[str]) -> str:
            parts = match.group(0).split(".")
            return HIDDEN if parts[0] in self.types and self._reveals(parts, named) else match.group(0)

        return _BARE_TYPE.sub(bare, _QUOTED.sub(quoted, message))

    def _reveals(self, words: list[str], named: frozenset[str]) -> bool:
        return any(word in self.names and word not in named for word in words)


def request_names(query: str | None, operation_name: str | None, variables: Any) -> frozenset[str]:
    """Every identifier the request contains: the client may see those again."""
    named = set(_IDENTIFIER.findall(query or ""))
    named.update(_IDENTIFIER.findall(operation_name or ""))
    for text in _strings(variables):
        named.update(_IDENTIFIER.findall(text))
    return frozenset(named | BUILT_IN)


def _strings(value: Any) -> Iterator[str]:
    """The keys and string values of a JSON value, iteratively (the body's depth is bounded, but
    this does not rely on it)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_VARIABLE_DEPTH:
            continue
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, inner in item.items():
                yield str(key)
                stack.append((inner, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((inner, depth + 1) for inner in item)
