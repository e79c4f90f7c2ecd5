"""The committed schema.graphql matches the code; the cost estimate counts what a query can read."""

from __future__ import annotations

from pathlib import Path

from graphql import parse

from observatory_api.graphql.limits import CATALOGUE_FANOUT, COMPARISON_COST, NESTED_FANOUT, Estimate, estimate
from observatory_api.graphql.schema import build_schema, schema_sdl
from observatory_api.settings import GraphQLSettings, QuerySettings

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schemas" / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schemas/schema.graphql is stale: run `python -m observatory_api.export_schemas`"
    )


def test_the_documented_query_is_in_the_schema() -> None:
    sdl = schema_sdl()
    assert "  traces(\n    filter: TraceFilter = null\n" in sdl
    for field in ("tokenCount: Int!", "metadata: JSON!", "scalar JSON", "scalar DateTime"):
        assert field in sdl


SCHEMA = build_schema(GraphQLSettings(), QuerySettings())._schema


def estimated(query: str, variables: dict | None = None) -> Estimate:
    found = estimate(SCHEMA, parse(query), None, variables, QuerySettings())
    assert found is not None
    return found


def cost(query: str, variables: dict | None = None) -> int:
    return estimated(query, variables).cost


def test_scalars_are_free_and_lists_multiply() -> None:
    assert cost("{ traces(limit: 10) { id cost metadata } }") == 1
    assert cost("{ traces { spans { id } } }") == 1 + 50 * 1
    assert cost("{ traces(limit: 50) { spans { children { id } } logs { body } } }") == 1 + 50 * (1 + NESTED_FANOUT + 1)
    assert cost("query($n: Int) { traces(limit: $n) { spans { id } } }", {"n": 7}) == 8


def test_fragments_are_counted() -> None:
    query = "query { traces(limit: 5) { ...T } } fragment T on Trace { spans { id } logs { id } }"
    assert cost(query) == 1 + 5 * 2


def test_session_traces_cost_by_their_limit() -> None:
    assert cost("{ sessions(limit: 20) { traces(limit: 5) { spans { id } } } }") == 1 + 20 * (1 + 5 * 1)
    assert cost("{ sessions(limit: 20) { traces { id } } }") == 1 + 20 * 1


def test_the_new_fields_are_in_the_schema() -> None:
    sdl = schema_sdl()
    for field in (
        "traces(limit: Int! = 10): [Trace!]!",
        "firstSeen: DateTime",
        "metric(\n    id: String!",
        "input MetricValueFilter",
    ):
        assert field in sdl, field


def test_a_page_costs_its_limit_once() -> None:
    # `items` is the page its `limit` already counted: not a further fan-out.
    assert cost("{ tracesPage(limit: 20) { items { spans { id } } nextCursor } }") == 1 + 20 * (1 + 1)
    assert cost("{ searchTraces(limit: 20) { items { spans { id } } } }") == 1 + 20 * (1 + 1)
    assert cost("{ searchTraces { items { logs { id } } } }") == 1 + 50 * (1 + 1)
    assert cost('{ trace(id: "x") { spans { children { id } } } }') == 1 + (1 + NESTED_FANOUT * 1)


def test_usage_with_compare_with_costs_per_model() -> None:
    batched = cost('{ models { usage(from: "2026-01-01T00:00:00Z") { requests } } }')
    assert batched == 1 + 1
    one = cost('{ model(id: "openai/gpt-4o") { usage(compareWith: "openai/gpt-4o-mini") { requests } } }')
    assert one == 1 + 1 + COMPARISON_COST
    every = cost('{ models { usage(compareWith: "openai/gpt-4o-mini") { requests } } }')
    assert every == 1 + 1 + COMPARISON_COST * CATALOGUE_FANOUT
    query = "query($c: String) { models { usage(compareWith: $c) { requests } } }"
    assert cost(query, {"c": None}) == batched
    assert cost(query, {"c": "openai/gpt-4o-mini"}) == every
    assert cost("{ models { usage(compareWith: null) { requests } } }") == batched


def test_the_cost_uses_the_coerced_variables() -> None:
    query = "query($n: Int = 400) { traces(limit: $n) { spans { id } } }"
    assert cost(query) == 1 + 400 * 1  # the declared default, not the page size
    assert cost(query, {"n": 7}) == 1 + 7 * 1  # a value sent wins
    assert cost(query, {"n": None}) == 1 + 50 * 1  # null: the page size, as the resolver reads it
    # An argument the query does not give takes the schema's default (`Session.traces` 10).
    assert cost("query($n: Int = 3) { sessions(limit: $n) { traces { id } } }") == 1 + 3 * 1
    assert cost("query($n: Int! = 3) { sessions { traces(limit: $n) { spans { id } } } }") == 1 + 50 * (1 + 3 * 1)
    # Out of bounds, a limit counts as the largest the resolver accepts (and the resolver refuses it).
    assert cost("{ traces(limit: 1000000) { spans { id } } }") == 1 + 1000 * 1


def test_variables_that_do_not_coerce_are_left_to_execution() -> None:
    query = "query($n: Int!) { traces(limit: $n) { id } }"
    assert estimate(SCHEMA, parse(query), None, {}, QuerySettings()) is None
    assert estimate(SCHEMA, parse(query), None, {"n": "many"}, QuerySettings()) is None
    assert estimate(SCHEMA, parse(query), None, ["not", "a", "mapping"], QuerySettings()) is None


def test_rows_count_every_alias_and_every_nested_object() -> None:
    aliases = "query($l: Int = 1000) { " + " ".join(f"a{i}: spans(limit: $l) {{ id }}" for i in range(15)) + " }"
    assert estimated(aliases) == Estimate(cost=15, rows=15 * 1000)
    assert estimated("{ traces(limit: 20) { spans { id } logs { id } } }").rows == 20 * (1 + 10 + 10)
    assert estimated("{ tracesPage(limit: 20) { items { id } nextCursor } }").rows == 1 + 20
    assert estimated("{ models { id } }").rows == 1
