"""Schemathesis over the GraphQL schema, against the real app (`create_app`) on both backends over
the seeded dataset: valid and invalid queries for every field of `Query`, as a developer and as a
viewer. No answer may be a 5xx, an `INTERNAL` or database error, or break the schema's own
contract (a non-null field that is null); a 4xx is problem JSON.

The schema comes from the committed SDL (introspection is off, as in production). Bounded by
EXAMPLES per field and mode, derandomized so that a run in CI is the run on a laptop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import graphql
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes

from observatory_api.app import create_app
from observatory_api.graphql.schema import schema_sdl
from observatory_api.settings import DatabaseSettings, RateLimitSettings
from tests.conftest import auth_headers, make_settings
from tests.dataset import DATASET_END

# Per field, mode and backend; OBSERVATORY_FUZZ_EXAMPLES raises it for a longer run by hand.
EXAMPLES = int(os.environ.get("OBSERVATORY_FUZZ_EXAMPLES", "25"))
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# What a client may be told: its own mistakes. INTERNAL and DATABASE_* are the service failing.
CLIENT_CODES = {"INVALID_INPUT", "NOT_FOUND", "FORBIDDEN", "ROW_BUDGET_EXCEEDED"}
ROLES = ["developer", "viewer"]


# ----------------------------------------------------------------------- the custom scalars


def literal(value: Any) -> graphql.ValueNode:
    """A JSON value as a GraphQL literal (the `JSON` scalar reads object literals as dicts)."""
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([literal(item) for item in value])
    return nodes.Object(
        [graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=literal(v)) for k, v in value.items()]
    )


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
FIELDS = st.sampled_from(
    [
        *("model", "provider", "service", "status", "kind", "duration_ms", "cost_usd", "total_tokens", "tags"),
        *("start_time", "input", "output", "attributes.customer.tier", "attributes", "user_id", "nope", ""),
    ]
)
OPS = st.sampled_from(["eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "exists", "like"])
CONDITION = st.fixed_dictionaries({"field": FIELDS, "op": OPS, "value": SCALARS | st.lists(SCALARS, max_size=3)})
FILTERS = st.recursive(
    CONDITION,
    lambda inner: (
        st.fixed_dictionaries({"and": st.lists(inner, max_size=3)})
        | st.fixed_dictionaries({"or": st.lists(inner, max_size=3)})
        | st.fixed_dictionaries({"not": inner})
    ),
    max_leaves=6,
)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
JSON_VALUES = FILTERS | st.dictionaries(NAMES, SCALARS, max_size=3) | SCALARS | st.lists(SCALARS, max_size=3)
# Mostly within the dataset's 30 days (so that resolvers meet data), sometimes anywhere.
MOMENTS = st.datetimes(
    min_value=(DATASET_END - timedelta(days=32)).replace(tzinfo=None),
    max_value=(DATASET_END + timedelta(days=2)).replace(tzinfo=None),
    timezones=st.just(UTC),
)
ISO_MOMENTS = MOMENTS.map(lambda moment: moment.isoformat())
DATE_TIMES = st.one_of(ISO_MOMENTS, ISO_MOMENTS, ISO_MOMENTS, st.text(max_size=25))

schemathesis.graphql.scalar("JSON", JSON_VALUES.map(literal))
schemathesis.graphql.scalar("DateTime", DATE_TIMES.map(nodes.String))

SCHEMA = schemathesis.graphql.from_file(schema_sdl())
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


# ----------------------------------------------------------------------------- the checks


def check(case: Any, response: Any) -> None:
    request = case.body if isinstance(case.body, str) else json.dumps(case.body)
    assert response.status_code < 500, f"{response.status_code} for {request}:\n{response.text[:2000]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
        return
    # Schemathesis' own GraphQL checks: a JSON object, no non-null field answered null.
    SCHEMA.validate_response(case.operation, Response.from_any(response), case=case)
    body = response.json()
    codes = {(error.get("extensions") or {}).get("code") for error in body.get("errors") or ()}
    assert codes <= CLIENT_CODES, f"{codes} for {request}:\n{json.dumps(body)[:2000]}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(request: pytest.FixtureRequest, seeded_databases: dict[str, DatabaseSettings]) -> Iterator[TestClient]:
    """The app over the seeded dataset of one backend, with limits that let the fuzzer through."""
    roles = {role: 1_000_000 for role in ROLES}
    app_settings = make_settings(seeded_databases[request.param], rate_limit=RateLimitSettings(roles=roles))
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as client:
        yield client


HEADERS = {role: auth_headers(make_settings(DatabaseSettings()), role) for role in ROLES}


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.value)
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_query_makes_the_service_fail(fuzzed: TestClient, label: str, mode: GenerationMode) -> None:
    strategy = OPERATIONS[label].as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, role=st.sampled_from(ROLES))
    def run(case: Any, role: str) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
        response = fuzzed.post("/graphql", json=kwargs["json"], headers=HEADERS[role])
        check(case, response)

    run()
