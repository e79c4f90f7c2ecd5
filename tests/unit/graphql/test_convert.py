"""`mirrored`: a Strawberry type takes a Struct's fields, in order, under their GraphQL names."""

from __future__ import annotations

import msgspec
import strawberry

from observatory_api.graphql.convert import from_struct, mirrored


class Row(msgspec.Struct, kw_only=True):
    row_id: str
    duration_ms: float
    total_tokens: int | None
    note: str


@strawberry.type
@mirrored(Row, row_id="id")
class Mirror:
    id: str  # declared: a resolver would read it
    note: str = strawberry.field(description="Declared for its description.")
    extra: bool  # not in the Struct: after its fields


@strawberry.type
class Query:
    @strawberry.field
    def mirror(self) -> Mirror:
        row = Row(row_id="r1", duration_ms=1.5, total_tokens=None, note="n")
        return from_struct(Mirror, row, id=row.row_id, extra=True)


def test_the_struct_fields_come_in_its_order_under_graphql_names() -> None:
    sdl = str(strawberry.Schema(query=Query))
    mirror = sdl[sdl.index("type Mirror {") :]
    expected = "id: String!\n  duration: Float!\n  tokenCount: Int\n\n"
    expected += '  """Declared for its description."""\n  note: String!\n  extra: Boolean!\n}'
    assert mirror.startswith("type Mirror {\n  " + expected)


def test_a_mirrored_type_is_filled_from_its_struct() -> None:
    result = strawberry.Schema(query=Query).execute_sync("{ mirror { id duration tokenCount note extra } }")
    assert result.errors is None
    assert result.data == {"mirror": {"id": "r1", "duration": 1.5, "tokenCount": None, "note": "n", "extra": True}}


class Filters(msgspec.Struct, kw_only=True):
    window: int
    service: str | None = None
    min_duration_ms: float | None = None
    kind: str | None = None


@strawberry.input
@mirrored(Filters, exclude=("window", "kind"), first=("start",))
class FilterInput:
    start: int | None = None  # not in the Struct, but asked to come first


@strawberry.input
@mirrored(Filters, only=("kind",))
class NarrowerInput(FilterInput):
    pass


def test_an_input_takes_the_chosen_fields_with_their_defaults() -> None:
    @strawberry.type
    class InputQuery:
        @strawberry.field
        def echo(self, given: NarrowerInput) -> str:
            fields = (given.start, *(getattr(given, name) for name in ("service", "min_duration", "kind")))
            return "|".join(str(value) for value in fields)

        @strawberry.field
        def wider(self, given: FilterInput) -> str:
            return str(given.start)

    schema = strawberry.Schema(query=InputQuery)
    sdl = str(schema)
    assert "input FilterInput {\n  start: Int = null\n  service: String = null\n  minDuration: Float = null\n}" in sdl
    assert "input NarrowerInput {\n  start: Int = null\n  service: String = null\n  minDuration: Float = null\n" in sdl
    assert "  kind: String = null\n}" in sdl[sdl.index("input NarrowerInput") :]
    result = schema.execute_sync('{ echo(given: {service: "s", kind: "llm"}) }')
    assert result.errors is None
    assert result.data == {"echo": "None|s|None|llm"}
