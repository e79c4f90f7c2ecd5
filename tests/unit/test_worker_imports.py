"""What a worker imports: Alembic only to migrate, Strawberry only with GraphQL on, grpc only with
OTLP/gRPC on (each costs a worker ~8-9 MB of memory; docs/performance.md, "Memory")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from observatory_api.db import migrate, revisions
from observatory_api.settings import DatabaseSettings

ROOT = Path(__file__).resolve().parents[2]
WATCHED = ("alembic", "mako", "pygments", "strawberry", "graphql", "grpc")

BUILD_APP = """
import sys
from observatory_api.app import create_app
from observatory_api.settings import FeatureSettings, GraphQLSettings, IngestSettings, Settings

graphql, grpc_port = sys.argv[1] == "on", int(sys.argv[2])
settings = Settings(environment="test").replace(
    features=FeatureSettings(ingest=True),
    graphql=GraphQLSettings(enabled=graphql),
    ingest=IngestSettings(grpc_port=grpc_port),
)
create_app(settings)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[3:]))))
"""


def imported_by_create_app(graphql: str, grpc_port: int) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", BUILD_APP, graphql, str(grpc_port), *WATCHED],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_a_worker_with_graphql_and_grpc_off_imports_neither_nor_alembic() -> None:
    assert imported_by_create_app("off", 0) == set()


def test_graphql_and_grpc_on_are_imported_and_alembic_still_not() -> None:
    # The same check sees the imports when the features are on: it could fail.
    assert imported_by_create_app("on", 4317) == {"strawberry", "graphql", "grpc"}


def test_the_head_read_without_alembic_is_alembics_head() -> None:
    alembic_head = ScriptDirectory.from_config(migrate.alembic_config(DatabaseSettings())).get_current_head()
    assert revisions.head_revision() == alembic_head is not None


async def test_the_revision_read_without_alembic(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stamped.db'}")
    try:
        async with engine.begin() as connection:
            assert await revisions.current_revision(connection) is None  # never migrated
            await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            assert await revisions.current_revision(connection) is None
            await connection.execute(text("INSERT INTO alembic_version VALUES ('0012')"))
            assert await revisions.current_revision(connection) == "0012"
    finally:
        await engine.dispose()
