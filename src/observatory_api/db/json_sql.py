"""Conditions on JSON columns (the filter language's `tags` and `attributes.*` fields), per dialect.

The filter compiler calls these instead of branching on the dialect itself.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, Text, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class json_array_contains(FunctionElement[bool]):
    """`column` (a JSON array of strings) holds `value`. GIN-indexable `@>` on PostgreSQL."""

    type = Boolean()
    inherit_cache = True
    name = "json_array_contains"

    def __init__(self, column: ColumnElement[Any], value: str) -> None:
        super().__init__(column, bindparam(None, value, type_=String()))


@compiles(json_array_contains, "postgresql")
def _json_array_contains_pg(element: json_array_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return f"({compiler.process(column, **kw)} @> jsonb_build_array(CAST({compiler.process(value, **kw)} AS TEXT)))"


@compiles(json_array_contains, "sqlite")
def _json_array_contains_sqlite(element: json_array_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return (
        f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "  # noqa: S608 - compiled clauses only
        f"WHERE json_each.value = {compiler.process(value, **kw)})"
    )


JSON_PATH_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists")
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class json_path_condition(FunctionElement[bool]):
    """A condition on the value at `path` inside a JSON document column.

    `op` is one of JSON_PATH_OPS; ordering operators only match values of the same JSON type as
    `value` (a number is never "greater" than a string). The path is one bound parameter: a text[]
    on PostgreSQL (each key is data, so `a,b` or `a}` is one key, never array-literal syntax), a
    JSON path of quoted labels on SQLite. Keys must not hold `"` or control characters (the filter
    language refuses them): SQLite's path syntax has no escape for `"`.
    """

    type = Boolean()
    # The operator and path shape change the SQL text, and they are not clause arguments.
    inherit_cache = False
    name = "json_path_condition"

    def __init__(self, column: ColumnElement[Any], path: list[str], op: str, value: Any = None) -> None:
        if op not in JSON_PATH_OPS:
            raise ValueError(f"unknown JSON path operator {op!r}")
        self.path = path
        self.path_op = op  # not `op`: that is the expression method ColumnElement.op()
        self.value = value
        super().__init__(column)


def _json_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@compiles(json_path_condition, "postgresql")
def _json_path_condition_pg(element: json_path_condition, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    path = compiler.process(bindparam(None, list(element.path), type_=postgresql.ARRAY(Text())), **kw)
    at_path = f"({col} #> {path})"
    if element.path_op == "exists":
        return f"({at_path} IS NOT NULL)"
    if element.path_op == "contains":
        pattern = compiler.process(bindparam(None, _like_pattern(str(element.value)), type_=Text()), **kw)
        return f"(({col} #>> {path}) ILIKE {pattern})"
    value = compiler.process(bindparam(None, json.dumps(element.value), type_=Text()), **kw)
    comparison = f"({at_path} {_SQL_OPS[element.path_op]} CAST({value} AS JSONB))"
    if element.path_op in ("eq", "ne"):
        return comparison
    return f"(jsonb_typeof({at_path}) = '{_json_type_of(element.value)}' AND {comparison})"


_SQLITE_TYPES = {"number": "('integer', 'real')", "string": "('text')", "boolean": "('true', 'false')"}


_SQLITE_INTEGER = range(-(2**63), 2**63)


def _sqlite_json_path(path: list[str]) -> str:
    """`$."a"."b"`, each label escaped as the stored JSON text escapes its keys (SQLAlchemy's
    json.dumps, ASCII only): SQLite 3.40 compares a label with a key's raw text, newer versions
    unescape both, and either way `é` or a backslash then matches."""
    if any('"' in key for key in path):
        raise ValueError('a JSON path key may not hold `"` on SQLite')
    return "$" + "".join(f'."{json.dumps(key)[1:-1]}"' for key in path)


@compiles(json_path_condition, "sqlite")
def _json_path_condition_sqlite(element: json_path_condition, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    path = compiler.process(bindparam(None, _sqlite_json_path(element.path), type_=Text()), **kw)
    if element.path_op == "exists":
        return f"(json_type({col}, {path}) IS NOT NULL)"
    extracted = f"json_extract({col}, {path})"
    if element.path_op == "contains":
        pattern = compiler.process(bindparam(None, _like_pattern(str(element.value)), type_=Text()), **kw)
        return f"({extracted} LIKE {pattern} ESCAPE '\\')"
    raw = element.value
    if isinstance(raw, bool):
        raw = int(raw)
    elif isinstance(raw, int) and raw not in _SQLITE_INTEGER:
        raw = float(raw)  # SQLite binds 64-bit integers only; JSON numbers compare as numbers anyway
    value = compiler.process(bindparam(None, raw), **kw)
    json_types = _SQLITE_TYPES[_json_type_of(raw)]
    return f"(json_type({col}, {path}) IN {json_types} AND {extracted} {_SQL_OPS[element.path_op]} {value})"
