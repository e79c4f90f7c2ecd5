"""`@resolver(description=...)`: Strawberry's `@strawberry.field(...)` with the resolver's type kept.

Strawberry types the called form of `strawberry.field` as `Any` (strawberry-graphql/strawberry#1929,
open), so under `mypy --strict` every resolver it decorates becomes untyped. This is the same call
at run time; for the checker the decorated resolver keeps its own signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import strawberry

R = TypeVar("R", bound=Callable[..., object])


def resolver(*, description: str) -> Callable[[R], R]:
    field: Callable[[R], R] = strawberry.field(description=description)
    return field
