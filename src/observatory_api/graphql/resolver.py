"""`@resolver(description=...)`: Strawberry's `@strawberry.field(...)` with the resolver's type kept;
`list_and_page`: the list and page fields of one listing from one resolver.

Strawberry types the called form of `strawberry.field` as `Any` (strawberry-graphql/strawberry#1929,
open), so under `mypy --strict` every resolver it decorates becomes untyped. This is the same call
at run time; for the checker the decorated resolver keeps its own signature.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from types import GenericAlias
from typing import Any, Protocol, TypeVar

import strawberry

R = TypeVar("R", bound=Callable[..., object])


def resolver(*, description: str) -> Callable[[R], R]:
    field: Callable[[R], R] = strawberry.field(description=description)
    return field


class _Page(Protocol):
    @property
    def items(self) -> Sequence[object]: ...


def list_and_page(page: Callable[..., Awaitable[_Page]], *, item: type) -> tuple[Any, Any]:
    """Two fields from one page resolver: `things` (the items of one page) and `thingsPage` (the page).

    Both take the page resolver's arguments, written once; the list field is the same call with
    the return type `[item]`, is named as the plural of `item` (`Trace`: `traces`) and described
    by the page resolver's docstring.
    """
    list_description = inspect.getdoc(page)
    things = item.__name__[0].lower() + item.__name__[1:] + "s"
    page_description = f"One page of `{things}` with the cursor of the next one."

    @functools.wraps(page)
    async def items(*args: Any, **kwargs: Any) -> Sequence[object]:
        return (await page(*args, **kwargs)).items

    returned = GenericAlias(list, (item,))  # list[item]
    # Strawberry reads the arguments and the return type from these two.
    items.__signature__ = inspect.signature(page).replace(return_annotation=returned)  # type: ignore[attr-defined]
    items.__annotations__ = {**page.__annotations__, "return": returned}
    return (
        strawberry.field(resolver=items, description=list_description),
        strawberry.field(resolver=page, description=page_description),
    )
