"""The per-request row budget (`graphql.max_rows`): the second line behind the cost estimate.

Every resolver and DataLoader that reads rows from the database counts them (`reads`), and every
resolver that returns objects counts those (`returns`); either tally passing the budget stops the
request. A trace's spans are counted once as read (by the first of `spans`, `rootSpans`, `children`
or `parent` to need them), before the read when the trace's `spanCount` tells how many there are.
Once the budget is spent, every further count raises at once, so no other field starts a read.
"""

from __future__ import annotations

from collections.abc import Hashable

from observatory_api.core.errors import DomainError

ROW_BUDGET_CODE = "ROW_BUDGET_EXCEEDED"


class RowBudgetExceeded(DomainError):
    status_code, code, title = 400, ROW_BUDGET_CODE, "Row budget exceeded"


class RowBudget:
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.read = 0
        self.returned = 0
        self.exceeded = False
        self._read_keys: set[Hashable] = set()

    @property
    def message(self) -> str:
        return (
            f"the query needs more than {self.max_rows} rows: ask for fewer items (a smaller `limit`), "
            "fewer nested relations or fewer aliases"
        )

    def check(self) -> None:
        """Raise when the budget is already spent (called before a read starts)."""
        if self.exceeded:
            raise RowBudgetExceeded(self.message)

    def reads(self, rows: int, key: Hashable | None = None) -> None:
        """`rows` read from the database; with `key`, only the first count for that key counts."""
        self.check()
        if key is not None:
            if key in self._read_keys:
                return
            self._read_keys.add(key)
        self.read += rows
        self._enforce()

    def returns(self, rows: int) -> None:
        """`rows` objects a field returns."""
        self.check()
        self.returned += rows
        self._enforce()

    def read_and_returned(self, rows: int) -> None:
        """A top-level page: the rows read are the objects returned."""
        self.reads(rows)
        self.returns(rows)

    def _enforce(self) -> None:
        if self.read > self.max_rows or self.returned > self.max_rows:
            self.exceeded = True
            raise RowBudgetExceeded(self.message)
