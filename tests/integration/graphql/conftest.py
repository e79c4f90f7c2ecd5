"""Fixtures of the GraphQL tests: the dataset's range as GraphQL variables, and a statement counter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import event


@pytest.fixture
def window(full_range: dict) -> dict[str, Any]:
    return {"from": full_range["from"], "to": full_range["to"]}


@pytest.fixture
def statements(client: TestClient) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the test runs."""
    seen: list[str] = []
    engine = client.app.state.resources.read_engine.sync_engine

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)
