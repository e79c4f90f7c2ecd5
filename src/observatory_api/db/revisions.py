"""The schema's revisions without Alembic: the head of `migrations/` and the revision a database is
at. A worker reads both (at start-up and for /health); importing Alembic pulls Mako and Pygments
(~9 MB of a worker's memory), so only the migrations themselves (`db/migrate.py`) import it."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

VERSION_TABLE = "alembic_version"
# `revision = "0012"` and `down_revision = "0011"` (or None, or a tuple for a merge), as Alembic writes them.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)


class MissingMigrations(RuntimeError):
    """No revision under `migrations/`: a partial copy of the tree."""


def migrations_path() -> Path:
    """The `migrations/` folder: shipped inside the wheel, or at the root of a source checkout."""
    shipped = Path(__file__).resolve().parents[1] / "_migrations"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[3] / "migrations"


@cache  # the files do not change while a process runs; read at start-up twice
def head_revision() -> str:
    """The one revision no other revises (Alembic's `get_current_head`); several heads are an error,
    and so is none: a tree without `migrations/` would otherwise take a database without a schema
    for one at head (both None) and serve 500s."""
    parents: dict[str, tuple[str, ...]] = {}
    versions = migrations_path() / "versions"
    for path in sorted(versions.glob("*.py")):
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        down = ast.literal_eval(found.get("down_revision", "None"))
        parents[ast.literal_eval(found["revision"])] = (
            () if down is None else (down,) if isinstance(down, str) else tuple(down)
        )
    revised = {parent for downs in parents.values() for parent in downs}
    heads = sorted(set(parents) - revised)
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {', '.join(heads)}")
    if not heads:
        raise MissingMigrations(
            f"no migrations in {versions}: install the package, or run from a whole source checkout"
        )
    return heads[0]


async def current_revision(connection: AsyncConnection) -> str | None:
    """The revision stamped in the database (None before the first migration), as Alembic reads it."""

    def read(sync_connection: Connection) -> str | None:
        if not inspect(sync_connection).has_table(VERSION_TABLE):
            return None
        stamped = list(sync_connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
        if len(stamped) > 1:
            raise RuntimeError(f"the database is stamped with several revisions: {', '.join(stamped)}")
        return stamped[0] if stamped else None

    return await connection.run_sync(read)
