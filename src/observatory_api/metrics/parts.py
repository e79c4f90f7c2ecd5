"""The rollup reads of one metric query, sent as one statement.

An answer from the rollups reads each grain's segment (the days, the hours and minutes at either
end) and the raw edges. Each statement costs about as much CPU to send and to plan as it costs to
run on a small range (bench/RESULTS.md, "uncached metric answers"), so every rollup read of a query
goes into one UNION ALL statement (`parts_statement`), and each segment takes back its own rows
by the part column: the segment cache still keeps them segment by segment, piece by piece.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from sqlalchemy import Select, bindparam, literal_column, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from observatory_api.core.query import TimeWindow
from observatory_api.metrics.sql import WINDOW_END, WINDOW_START, memoized, window_params
from observatory_api.metrics.states import Level, decoder

# What a segment does with the states read for all of them: its own level.
Finish = Callable[[list[Level]], Awaitable[Level]]


class Parts:
    """The rollup reads of one query (states statements of one plan, over any grain or table)."""

    def __init__(self) -> None:
        self.reads: list[tuple[Hashable, Any, TimeWindow]] = []  # memo key, statement, window

    def add(self, key: Hashable, statement: Any, window: TimeWindow) -> int:
        """Read `statement` (memoized as `key`) over `window`; the index of its states in `read`'s list."""
        self.reads.append((key, statement, window))
        return len(self.reads) - 1

    async def read(self, conn: AsyncConnection, nkeys: int) -> list[Level]:
        """The states of each read, keyed by their first `nkeys` columns: one statement for all."""
        if len(self.reads) == 1:  # as it is, without a part column
            ((_, statement, window),) = self.reads
            result = await conn.execute(statement, window_params(window))
            decode = decoder(tuple(result.keys())[nkeys:])
            return [{tuple(row[:nkeys]): decode(row[nkeys:]) for row in result}]
        if not self.reads:
            return []
        key = ("parts", tuple(k for k, _, _ in self.reads))
        statement = memoized(key, lambda: parts_statement([s for _, s, _ in self.reads]))
        result = await conn.execute(statement, window_params(*(window for _, _, window in self.reads)))
        decode = decoder(tuple(result.keys())[nkeys:-1])
        found: list[Level] = [{} for _ in self.reads]
        for row in result:
            found[row[-1]][tuple(row[:nkeys])] = decode(row[nkeys:-1])
        return found


def taking(at: int) -> Finish:
    """The `at`th read's states, as they are."""

    async def finish(read: list[Level]) -> Level:
        return read[at]

    return finish


PART = "part"


def parts_statement(statements: list[Select[Any]]) -> Any:
    """`statements` (each over one window, `window_params` of one) as one UNION ALL statement over
    as many windows (`window_params(*windows)`, in the same order), each row ending with the index
    of its statement, labelled `part`: one bind and one round trip instead of one per statement.
    They must select the same columns (states of the same plan over rollups of any grain)."""
    return union_all(
        *(
            _renumbered(statement, i).add_columns(literal_column(str(i)).label(PART))
            for i, statement in enumerate(statements)
        )
    )


def _renumbered(statement: Select[Any], index: int) -> Select[Any]:
    """`statement` with its window's bound values named as the `index`th window's."""
    names = {WINDOW_START: f"{WINDOW_START}_{index}", WINDOW_END: f"{WINDOW_END}_{index}"}

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in names:
            return bindparam(names[element.key], type_=element.type)
        return None

    renumbered = visitors.replacement_traverse(statement, {}, replace)
    assert isinstance(renumbered, Select)
    return renumbered
