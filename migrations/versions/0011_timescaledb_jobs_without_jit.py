"""TimescaleDB: the continuous aggregates' refresh jobs run with JIT off.

On TimescaleDB only (plain PostgreSQL and SQLite: nothing to do).

The four aggregates have ~330 output expressions (sums and histogram bins). Over compressed
chunks the planner's estimates push a refresh batch's statement over `jit_above_cost`, and LLVM
then compiles for minutes: at 10 million spans one batch over 20,000 spans did not finish in 300 s
with JIT and took 0.6 s without (bench/RESULTS.md, "TimescaleDB at 10 million spans"), so the
minute aggregates fell behind and metric answers with them. A job runs as its owner, with that
role's settings in this database: the owner of the refresh jobs (the role that ran 0005, which
also writes) gets `jit = off` here. The API's read-only role keeps the server's setting; the
writer already turns JIT off in each write transaction.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _for_job_owners(setting: str) -> None:
    from observatory_api.db.timescaledb_ddl import when_timescaledb

    statements = f"""
    FOR owner_name IN
      SELECT DISTINCT owner FROM timescaledb_information.jobs
      WHERE proc_name = 'policy_refresh_continuous_aggregate'
    LOOP
      EXECUTE format('ALTER ROLE %I IN DATABASE %I {setting}', owner_name, current_database());
    END LOOP;"""
    op.execute(when_timescaledb(statements, declare="owner_name name;"))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _for_job_owners("SET jit = off")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _for_job_owners("RESET jit")
