"""A database that does not answer in time gets 503 problem JSON with Retry-After (REST) or a
DATABASE_TIMEOUT error (GraphQL), never a 500 or a masked internal error."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from observatory_api.app import create_app
from observatory_api.errors import DATABASE_RETRY_AFTER
from observatory_api.settings import DatabaseSettings
from tests.conftest import _pg_url, auth_headers, make_settings, scratch_database, table_locked


async def test_a_read_past_the_statement_timeout_answers_503_and_the_next_one_works(pg_template: str) -> None:
    async with scratch_database(pg_template, label="timeout") as name:
        settings = make_settings(DatabaseSettings(url=_pg_url(name), statement_timeout_ms=300))
        headers = auth_headers(settings, "developer")
        async with AsyncTestClient(create_app(settings)) as client:
            async with table_locked(name, "traces", "ACCESS EXCLUSIVE"):  # even reads wait
                refused = await client.get("/api/v1/traces", headers=headers)
                query = {"query": '{ trace(id: "%s") { id } }' % ("a" * 32)}
                graphql = (await client.post("/graphql", json=query, headers=headers)).json()
            answered = await client.get("/api/v1/traces", headers=headers)

    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == DATABASE_RETRY_AFTER
    problem = refused.json()
    assert problem["type"].endswith("/database-timeout")
    assert "narrow the time range" in problem["detail"]
    assert "statement" not in problem["detail"]  # nothing of the SQL or the driver leaks
    assert answered.status_code == 200  # the refusal was not cached
    (error,) = graphql["errors"]
    assert error["extensions"]["code"] == "DATABASE_TIMEOUT"
    assert error["message"] == problem["detail"]
