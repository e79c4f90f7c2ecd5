"""PL/pgSQL for the migrations' TimescaleDB DDL: `when_timescaledb` wraps it in a `DO` block that
runs only where the extension is; `retried_while_jobs_race` retries what races a background job.

Dropping a continuous aggregate, or removing one of its policies, deletes catalog rows that a
refresh job running at that moment deletes or rewrites as well (the aggregate's invalidation log,
the job's statistics). The DDL waits for the job's transaction and then fails with `tuple
concurrently deleted` (or `updated`), SQLSTATE XX000: seen when migrating right after a
downgrade had re-added scheduled policies, whose first runs start at once. The statements run in
a subtransaction and run again once the job has committed; any other error, and the last
attempt's, is raised.
"""

from __future__ import annotations

ATTEMPTS = 5


def retried_while_jobs_race(statements: str, attempts: int = ATTEMPTS) -> str:
    """PL/pgSQL (for the body of a `DO` block) running `statements` until no job races them."""
    return f"""
FOR attempt IN 1..{attempts} LOOP
  BEGIN
{statements}
    EXIT;
  EXCEPTION WHEN internal_error THEN
    IF attempt = {attempts} OR SQLERRM NOT LIKE 'tuple concurrently %' THEN
      RAISE;
    END IF;
    PERFORM pg_sleep(0.1 * attempt);
  END;
END LOOP;
"""


def when_timescaledb(statements: str, *, only_if: str | None = None, declare: str | None = None) -> str:
    """A `DO` block that runs `statements` (PL/pgSQL) only in a database with TimescaleDB, and
    there only when `only_if` (a condition on its catalogue) holds.

    Decided inside the database, not by the migration: `migrate --sql` carries both branches.
    `only_if` is a second IF, not an AND: PL/pgSQL plans it only once the extension is known to
    be there, so that `timescaledb_information` exists. `declare` holds the block's variables.
    """
    body = statements if only_if is None else f"IF {only_if} THEN\n{statements}\nEND IF;"
    variables = "" if declare is None else f"DECLARE {declare}\n"
    return f"""DO $$
{variables}BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
{body}
  END IF;
END
$$;
"""  # noqa: S608 - the migrations' own statements, no input
