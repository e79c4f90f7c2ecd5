"""An empty migrated database of the backend a test's `client` reads (re-import targets)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from observatory_api.settings import DatabaseSettings
from tests.conftest import _pg_url, scratch_database


@pytest_asyncio.fixture
async def empty_database(
    backend: str, tmp_path: Path, pg_template: str, _sqlite_template_ready: Path
) -> AsyncIterator[DatabaseSettings]:
    if backend == "sqlite":
        path = tmp_path / "observatory.db"
        shutil.copyfile(_sqlite_template_ready, path)
        yield DatabaseSettings(sqlite_path=str(path))
        return
    async with scratch_database(pg_template, label="reimport") as name:
        yield DatabaseSettings(url=_pg_url(name))
