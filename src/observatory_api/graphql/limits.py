"""The cost limit and the row estimate, computed before execution on the operation that will run,
with its arguments as execution will see them: variables coerced (the values sent, the declared
defaults for those not sent), literal arguments, and the schema's argument defaults.

Cost: scalar fields are free; every object field costs 1 plus its selections times its fan-out. The
fan-out of a field with a `limit` argument is that limit (the page size when null); a page it returns
(`tracesPage`, `session`...) holds that many `items` (or `traces`), not a further fan-out; any other
nested list (`spans`, `logs`, `children`, `series`...) counts NESTED_FANOUT, a top-level list without
`limit` (`models`) 1. `usage(compareWith:)` is not batched with the other models' usage: it adds
COMPARISON_COST per model, and under the top-level `models` CATALOGUE_FANOUT models are assumed.

Rows: the objects the answer could hold, each list counted at its fan-out. A query whose estimate
is above `graphql.max_rows` is refused as the row budget (budget.py) would stop it, before any read;
where the estimate cannot know the size (a trace's spans), the budget counts the real rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension

from observatory_api.graphql.budget import ROW_BUDGET_CODE
from observatory_api.settings import QuerySettings

NESTED_FANOUT = 10
# A single-model usage answer with a comparison: several statements over raw spans.
COMPARISON_COST = 10
CATALOGUE_FANOUT = 50
MAX_DEPTH = 50  # deeper documents are refused by the depth limit; this only bounds the walk


@dataclass(frozen=True, slots=True)
class Estimate:
    cost: int
    rows: int


@dataclass(frozen=True, slots=True)
class _Fanout:
    cost: int
    rows: int


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Any,
    limits: QuerySettings,
) -> Estimate | None:
    """The cost and rows of the operation, or None when execution will refuse it anyway (no such
    operation, variables that do not coerce: execution reports those)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY or schema.query_type is None:
        return None
    if variables is not None and not isinstance(variables, dict):
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {}, max_errors=1)
    if isinstance(coerced, list):
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(schema, fragments, coerced, limits)
    return walk.selections(operation.selection_set, schema.query_type, 0, frozenset(), None, "")


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
        limits: QuerySettings,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.limits = limits

    def selections(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType,
        depth: int,
        seen: frozenset[str],
        page: int | None,
        parent_name: str,
    ) -> Estimate:
        cost = rows = 0
        if selection_set is None or depth > MAX_DEPTH:
            return Estimate(0, 0)
        for node in selection_set.selections:
            found: Estimate | None = None
            if isinstance(node, FieldNode):
                fields = parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
                definition = fields.get(node.name.value)
                if definition is not None:
                    found = self.field(node, definition, depth, seen, page, parent_name)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                found = self.selections(node.selection_set, on or parent, depth, seen, page, parent_name)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = self.fragments.get(node.name.value)
                if fragment is not None:
                    on = self.schema.get_type(fragment.type_condition.name.value) or parent
                    found = self.selections(
                        fragment.selection_set, on, depth, seen | {node.name.value}, page, parent_name
                    )
            if found is not None:
                cost, rows = cost + found.cost, rows + found.rows
        return Estimate(cost, rows)

    def field(
        self,
        node: FieldNode,
        definition: GraphQLField,
        depth: int,
        seen: frozenset[str],
        page: int | None,
        parent_name: str,
    ) -> Estimate:
        if node.selection_set is None:
            return Estimate(0, 0)
        try:
            arguments = get_argument_values(definition, node, self.variables)
        except GraphQLError:  # execution refuses it with the reason
            arguments = {}
        name = node.name.value
        fanout, child_page = self._fanout(definition, arguments, depth, page)
        extra = 0
        if name == "usage" and arguments.get("compareWith") is not None:
            extra = COMPARISON_COST * (CATALOGUE_FANOUT if depth == 1 and parent_name == "models" else 1)
        inner = self.selections(node.selection_set, get_named_type(definition.type), depth + 1, seen, child_page, name)
        return Estimate(1 + extra + fanout.cost * inner.cost, fanout.rows * (1 + inner.rows))

    def _fanout(
        self, definition: GraphQLField, arguments: dict[str, Any], depth: int, page: int | None
    ) -> tuple[_Fanout, int | None]:
        is_list = is_list_type(get_nullable_type(definition.type))
        if "limit" in definition.args:
            limit = self._limit(arguments.get("limit"))
            # A page (or a session) returns one object whose list holds `limit` items.
            return _Fanout(limit, limit if is_list else 1), (None if is_list else limit)
        if is_list and page is not None:
            return _Fanout(1, page), None
        if is_list:
            return (_Fanout(NESTED_FANOUT, NESTED_FANOUT) if depth > 0 else _Fanout(1, 1)), None
        return _Fanout(1, 1), None

    def _limit(self, value: Any) -> int:
        if not isinstance(value, int):
            return self.limits.default_page_size
        # Beyond the bounds the resolver refuses the value with its own message.
        return min(max(1, value), self.limits.max_page_size)


def refusal(found: Estimate, max_cost: int, max_rows: int) -> GraphQLError | None:
    if found.cost > max_cost:
        return GraphQLError(
            f"the query's estimated cost is {found.cost}, above the limit of {max_cost}: "
            "ask for fewer items (a smaller `limit`) or fewer nested relations",
            extensions={"code": "INVALID_INPUT"},
        )
    if found.rows > max_rows:
        return GraphQLError(
            f"the query could return about {found.rows} rows, above the limit of {max_rows}: "
            "ask for fewer items (a smaller `limit`), fewer nested relations or fewer aliases",
            extensions={"code": ROW_BUDGET_CODE},
        )
    return None


def cost_limiter(max_cost: int, max_rows: int, limits: QuerySettings) -> Callable[[], SchemaExtension]:
    class CostLimiter(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            # After validation (the document is valid) and before any resolver: a refusal set as
            # the result replaces execution, so nothing is read.
            context = self.execution_context
            if context.result is None and context.graphql_document is not None:
                found = estimate(
                    context.schema._schema,
                    context.graphql_document,
                    context.operation_name,
                    context.variables,
                    limits,
                )
                error = refusal(found, max_cost, max_rows) if found is not None else None
                if error is not None:
                    context.result = ExecutionResult(data=None, errors=[error])
            yield

    return CostLimiter
