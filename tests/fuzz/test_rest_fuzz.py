"""Schemathesis over every REST operation of the app's own OpenAPI document, through the real app
(`create_app`) on both backends, over the dataset of `seeded_databases` (PostgreSQL read through the
read-only role), as a developer (an admin for the /admin operations; a fresh token per request, so
that `POST /auth/revoke` logs out only its own).

Each response must not be a 5xx, must conform to the documented schema, status code and content
type, and schema-invalid input (negative mode) must be refused with a 4xx. Half of the positive
cases of operations with `from`/`to` get the dataset's window instead of random timestamps (almost
all of which are out of range), so that their answers hold data. A stateful run follows the
document's links (list -> detail by id).

Not fuzzed: GraphQL (not in this document; tests/fuzz/test_graphql_fuzz.py) and OTLP ingest
(`/v1/traces`, `/v1/logs`: protobuf bodies; in the document only with `features.ingest`, which is
off here because it would write into the shared dataset).

Derandomized, so CI runs the same cases each time. `OBSERVATORY_FUZZ_EXAMPLES` sets the examples
per operation and mode (default 25), `OBSERVATORY_FUZZ_STEPS` the stateful scenarios (default 30);
`OBSERVATORY_FUZZ_RANDOM=1` draws new cases on every run.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, RateLimitSettings, Settings
from tests.conftest import BACKENDS, auth_headers, make_settings
from tests.dataset import DATASET_END

EXAMPLES = int(os.environ.get("OBSERVATORY_FUZZ_EXAMPLES", "25"))
SCENARIOS = int(os.environ.get("OBSERVATORY_FUZZ_STEPS", "30"))
DERANDOMIZE = os.environ.get("OBSERVATORY_FUZZ_RANDOM") != "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
BASE_URL = "http://testserver.local"
# The committed document equals the app's (tests/integration/api/test_health_and_docs.py): it
# names the operations at collection time; test_every_operation_of_the_document_is_fuzzed checks
# them against the live one.
DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "openapi.json").read_text())
OPERATIONS = sorted(
    operation["operationId"]
    for item in DOCUMENT["paths"].values()
    for method, operation in item.items()
    if method in ("get", "post")
)
# Negative mode needs input to make invalid.
WITH_INPUT = {
    operation["operationId"]
    for item in DOCUMENT["paths"].values()
    for method, operation in item.items()
    if method in ("get", "post") and (operation.get("parameters") or operation.get("requestBody"))
}
CASES = [(operation_id, GenerationMode.POSITIVE) for operation_id in OPERATIONS] + [
    (operation_id, GenerationMode.NEGATIVE) for operation_id in OPERATIONS if operation_id in WITH_INPUT
]
# A week of the dataset (tests/dataset.py), within the 31-day limit of a range.
WINDOW = {"from": (DATASET_END - timedelta(days=7)).isoformat(), "to": DATASET_END.isoformat()}


@dataclass(frozen=True)
class Target:
    client: TestClient
    settings: Settings
    schema: Any  # schemathesis' OpenAPI schema of the live document


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest, seeded_databases: dict[str, DatabaseSettings]) -> Iterator[Target]:
    # Rate limits out of the way (tests/integration/security tests them); every /auth request
    # counts against a per-IP limit of 10 a minute by default.
    limits = RateLimitSettings(roles={"admin": 10**7, "developer": 10**7}, auth_per_ip=10**7)
    settings = make_settings(seeded_databases[request.param], rate_limit=limits)
    with TestClient(create_app(settings), base_url=BASE_URL, raise_server_exceptions=False) as client:
        document = without_security(client.get("/schema/openapi.json").json())
        yield Target(client, settings, schemathesis.openapi.from_dict(document))


def without_security(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without its security schemes: `send` brings a valid credential to every case,
    so schemathesis' generated and mutated `Authorization`/`X-API-Key` headers never arrive, and
    a negative case whose only violations were there would be "accepted" (tests/integration/security
    test the credentials; tests/e2e/test_docs_pages.py the schemes)."""
    document.get("components", {}).pop("securitySchemes", None)
    document.pop("security", None)
    for path in document["paths"].values():
        for operation in path.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return document


def send(target: Target, case: Case) -> Response:
    """`case` through the app, serialized exactly as schemathesis' requests transport would (its
    negative checks reason about that serialization), with a fresh credential."""
    role = "admin" if (case.operation.tags or []) == ["admin"] else "developer"
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=auth_headers(target.settings, role))
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
    ).prepare()
    answer = target.client.request(
        prepared.method or case.method,
        prepared.path_url,
        content=prepared.body,
        headers=dict(prepared.headers),
    )
    return Response.from_any(answer)


def with_window(case: Case) -> None:
    """The dataset's week in place of generated timestamps, where the operation takes them."""
    names = {parameter.name for parameter in case.operation.query}
    if {"from", "to"} <= names:
        case.query = {**(case.query or {}), **WINDOW}
    elif case.operation.body and isinstance(case.body, dict):
        case.body = {**case.body, **WINDOW}


def fuzz_settings(**overrides: Any) -> hypothesis.settings:
    return hypothesis.settings(
        derandomize=DERANDOMIZE,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        **overrides,
    )


def test_every_operation_of_the_document_is_fuzzed(target: Target) -> None:
    live = sorted(result.ok().definition.raw["operationId"] for result in target.schema.get_all_operations())
    assert live == OPERATIONS


@pytest.mark.parametrize(("operation_id", "mode"), CASES, ids=[f"{o}-{m.value}" for o, m in CASES])
def test_operation_answers_as_documented(target: Target, operation_id: str, mode: GenerationMode) -> None:
    operation = target.schema.find_operation_by_id(operation_id)

    @fuzz_settings(max_examples=EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=mode), window=st.booleans())
    def run(case: Case, window: bool) -> None:
        if window and mode is GenerationMode.POSITIVE:
            with_window(case)
        response = send(target, case)
        case.validate_response(response, checks=CHECKS)

    run()


def test_stateful_walks_follow_the_links(target: Target) -> None:
    base = target.schema.as_state_machine()
    calls: list[str] = []

    class Walk(base):  # type: ignore[valid-type, misc]
        def call(self, case: Case, **kwargs: Any) -> Response:
            calls.append(case.operation.label)
            # Half of the positive cases on the dataset's window, chosen by the generated data
            # itself: a replay must send the same requests (the links read their answers).
            positive = case.meta is None or case.meta.generation.mode is GenerationMode.POSITIVE
            if positive and zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()) % 2:
                with_window(case)
            return send(target, case)

        def validate_response(self, response: Response, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Walk.run(settings=fuzz_settings(max_examples=SCENARIOS, stateful_step_count=6))
    assert calls
