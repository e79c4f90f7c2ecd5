"""The cost limit: an estimate of the rows a query can make the service read, refused before execution.

Scalar fields are free; every object field costs 1 plus its selections times its fan-out: the
`limit` argument of a list field (default: the page size), or NESTED_FANOUT for relations such as
`spans`, `logs` and `children` whose size the client does not choose.
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
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

NESTED_FANOUT = 10
# Fields returning lists whose length the client sets with `limit`.
PAGED = frozenset({"traces", "tracesPage", "spans", "spansPage", "logs", "logsPage", "sessions", "sessionsPage"})
NESTED = frozenset({"spans", "rootSpans", "children", "logs", "traces", "items", "series", "points", "models"})


def query_cost(document: Any, variables: dict[str, Any] | None, default_page: int) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    variables = variables or {}

    def selection_cost(selection_set: SelectionSetNode | None, depth: int, seen: frozenset[str]) -> int:
        if selection_set is None or depth > 50:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += field_cost(node, depth, seen)
            elif isinstance(node, InlineFragmentNode):
                total += selection_cost(node.selection_set, depth, seen)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    total += selection_cost(fragment.selection_set, depth, seen | {node.name.value})
        return total

    def field_cost(node: FieldNode, depth: int, seen: frozenset[str]) -> int:
        if node.selection_set is None:
            return 0
        name = node.name.value
        fanout = 1
        if depth == 0 and name in PAGED:
            fanout = _limit(node, variables) or default_page
        elif depth > 0 and name in NESTED:
            fanout = _limit(node, variables) or NESTED_FANOUT
        return 1 + fanout * selection_cost(node.selection_set, depth + 1, seen)

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
