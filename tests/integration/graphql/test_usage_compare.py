"""`usage(compareWith:)` answers what `GET /models/{id}/usage?compare_with=` answers; the usage
without a comparison stays batched."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.integration.graphql.helpers import assert_same, count, data, gql, rest_usage

FIELDS = """modelId from to interval requests errors errorRate inputTokens outputTokens tokenCount cost
  latency series byEnvironment topUsers
  comparison { modelId cost currentModelListCost difference ratio pricing }"""
EVERY_MODEL = f"""query($from: DateTime, $to: DateTime, $interval: Interval, $top: Int!, $with: String) {{
  models {{ id usage(from: $from, to: $to, interval: $interval, topUsers: $top, compareWith: $with) {{ {FIELDS} }} }}
}}"""
ONE_MODEL = f"""query($id: String!, $from: DateTime, $to: DateTime, $with: String) {{
  model(id: $id) {{ usage(from: $from, to: $to, compareWith: $with) {{ {FIELDS} }} }}
}}"""


def rest(client: TestClient, model_id: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/api/v1/models/{model_id}/usage", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_model_compared_matches_rest(client: TestClient, full_range: dict, window: dict) -> None:
    variables = {**window, "interval": "DAY", "top": 3, "with": "openai/gpt-4o-mini"}
    models = data(client, EVERY_MODEL, variables)["models"]
    assert len(models) == 30
    used = [m for m in models if m["usage"]["requests"]]
    assert len(used) >= 5
    assert all(m["usage"]["comparison"]["pricing"] == "price_at_span_time" for m in models)
    assert any(m["usage"]["comparison"]["ratio"] is not None for m in used)
    for model in models:
        params = {**full_range, "interval": "day", "top_users": 3, "compare_with": "openai/gpt-4o-mini"}
        assert_same(model["usage"], rest_usage(rest(client, model["id"], params)), model["id"])


def test_one_model_compared_matches_rest(client: TestClient, full_range: dict, window: dict) -> None:
    for model_id, other in (("anthropic/claude-sonnet-4", "openai/gpt-4o"), ("openai/gpt-4o", "openai/gpt-4o")):
        usage = data(client, ONE_MODEL, {**window, "id": model_id, "with": other})["model"]["usage"]
        expected = rest(client, model_id, {**full_range, "compare_with": other})
        assert expected["comparison"]["model_id"] == other and expected["requests"] > 0
        assert_same(usage, rest_usage(expected), model_id)
    # Without `compareWith`, no comparison, as REST.
    plain = data(client, ONE_MODEL, {**window, "id": "openai/gpt-4o", "with": None})["model"]["usage"]
    assert plain["comparison"] is None
    assert_same(plain, {**rest_usage(rest(client, "openai/gpt-4o", full_range)), "comparison": None})


def test_comparisons_are_per_model_and_the_rest_stays_batched(
    client: TestClient, window: dict, statements: list[str]
) -> None:
    batched = "query($from: DateTime, $to: DateTime) { models { usage(from: $from, to: $to) { requests cost } } }"
    compared = """query($from: DateTime, $to: DateTime) {
      model(id: "anthropic/claude-sonnet-4") {
        usage(from: $from, to: $to, compareWith: "openai/gpt-4o") { comparison { cost } }
      }
    }"""
    both = """query($from: DateTime, $to: DateTime) {
      models { usage(from: $from, to: $to) { requests cost } }
      model(id: "anthropic/claude-sonnet-4") {
        usage(from: $from, to: $to, compareWith: "openai/gpt-4o") { comparison { cost } }
      }
    }"""
    twice = """query($from: DateTime, $to: DateTime) {
      model(id: "anthropic/claude-sonnet-4") {
        a: usage(from: $from, to: $to, compareWith: "openai/gpt-4o") { comparison { cost } }
        b: usage(from: $from, to: $to, compareWith: "openai/gpt-4o") { requests }
      }
    }"""
    catalogue = count(client, statements, "{ models { id } }")
    assert count(client, statements, batched, window) - catalogue <= 10
    # The comparison is one single-model answer added to the batch, which it leaves as it was.
    assert count(client, statements, both, window) == count(client, statements, batched, window) + count(
        client, statements, compared, window
    )
    # The same comparison asked twice in a request is answered once.
    assert count(client, statements, twice, window) == count(client, statements, compared, window)


def test_invalid_compare_with_is_invalid_input_naming_it(client: TestClient, window: dict) -> None:
    for other, reason in (("x/y", "no model 'x/y' in the catalogue"), ("openai", "no model 'openai'")):
        body = gql(client, ONE_MODEL, {**window, "id": "openai/gpt-4o", "with": other})
        error = body["errors"][0]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        (detail,) = error["extensions"]["errors"]
        assert detail["field"] == "compareWith" and reason in detail["reason"]
        assert error["message"] == f"compareWith: {detail['reason']}"
        refused = client.get("/api/v1/models/openai/gpt-4o/usage", params={"compare_with": other})
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "compare_with"
        assert refused.json()["errors"][0]["reason"] == detail["reason"]
    for other in ("", "x" * 301):
        error = gql(client, ONE_MODEL, {**window, "id": "openai/gpt-4o", "with": other})["errors"][0]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert error["extensions"]["errors"][0]["field"] == "compareWith"


def test_compare_with_counts_in_the_cost_limit(client: TestClient, statements: list[str]) -> None:
    one = '{ models { usage(compareWith: "openai/gpt-4o") { requests } } }'
    assert "errors" not in gql(client, one)
    statements.clear()
    two = """{
      a: models { usage(compareWith: "openai/gpt-4o") { requests } }
      b: models { usage(compareWith: "openai/gpt-4o-mini") { requests } }
    }"""
    error = gql(client, two)["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT" and "cost" in error["message"]
    assert statements == [], "a refused query reads nothing"
