"""The cost limit: an estimate of the rows a query can make the service read, refused before execution.

Scalar fields are free; every object field costs 1 plus its selections times its fan-out: the
`limit` argument of a list field (default: the page size), or NESTED_FANOUT for relations such as
`spans`, `logs` and `children` whose size the client does not choose (a page's `items` are the page
its `limit` counted, not a further fan-out). `usage(compareWith:)` is not batched with the other
models' usage: it adds COMPARISON_COST per model, and under the top-level `models` list (whose
length is the catalogue's) CATALOGUE_FANOUT models are assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

NESTED_FANOUT = 10
# A single-model usage answer with a comparison: several statements over raw spans.
COMPARISON_COST = 10
CATALOGUE_FANOUT = 50
# Fields returning lists whose length the client sets with `limit`.
PAGED = frozenset(
    {"traces", "tracesPage", "searchTraces", "spans", "spansPage", "logs", "logsPage", "sessions", "sessionsPage"}
)
NESTED = frozenset({"spans", "rootSpans", "children", "logs", "traces", "items", "series", "points", "models"})


def query_cost(document: Any, variables: dict[str, Any] | None, default_page: int) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    variables = variables or {}

    def selection_cost(
        selection_set: SelectionSetNode | None, depth: int, seen: frozenset[str], parent: str = ""
    ) -> int:
        if selection_set is None or depth > 50:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += field_cost(node, depth, seen, parent)
            elif isinstance(node, InlineFragmentNode):
                total += selection_cost(node.selection_set, depth, seen, parent)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    total += selection_cost(fragment.selection_set, depth, seen | {node.name.value}, parent)
        return total

    def field_cost(node: FieldNode, depth: int, seen: frozenset[str], parent: str) -> int:
        if node.selection_set is None:
            return 0
        name = node.name.value
        top_parent = parent if depth == 1 else ""
        fanout = 1
        if depth == 0 and name in PAGED:
            fanout = _limit(node, variables) or default_page
        elif depth > 0 and name in NESTED and not (name == "items" and top_parent in PAGED):
            # A page's `items` are the page itself, already counted by its `limit`.
            fanout = _limit(node, variables) or NESTED_FANOUT
        extra = 0
        if name == "usage" and _given(node, "compareWith", variables):
            extra = COMPARISON_COST * (CATALOGUE_FANOUT if top_parent == "models" else 1)
        return 1 + extra + fanout * selection_cost(node.selection_set, depth + 1, seen, name)

    return sum(
        selection_cost(d.selection_set, 0, frozenset())
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


def _limit(node: FieldNode, variables: dict[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value != "limit":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return max(1, int(value.value))
        if isinstance(value, VariableNode) and isinstance(variables.get(value.name.value), int):
            return max(1, variables[value.name.value])
    return None


def _given(node: FieldNode, name: str, variables: dict[str, Any]) -> bool:
    """Whether the argument `name` has a non-null value (literal or variable)."""
    for argument in node.arguments or ():
        if argument.name.value == name:
            value = argument.value
            if isinstance(value, VariableNode):
                return variables.get(value.name.value) is not None
            return not isinstance(value, NullValueNode)
    return False


def cost_limiter(max_cost: int, default_page: int) -> Callable[[], SchemaExtension]:
    class CostLimiter(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if context.graphql_document is not None and context.pre_execution_errors is None:
                cost = query_cost(context.graphql_document, context.variables, default_page)
                if cost > max_cost:
                    context.pre_execution_errors = [
                        GraphQLError(
                            f"the query's estimated cost is {cost}, above the limit of {max_cost}: "
                            "ask for fewer items (a smaller `limit`) or fewer nested relations",
                            extensions={"code": "INVALID_INPUT"},
                        )
                    ]
            yield

    return CostLimiter
