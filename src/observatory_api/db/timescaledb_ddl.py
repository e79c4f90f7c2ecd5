"""DDL that races TimescaleDB's background jobs, retried until the job has committed.

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
