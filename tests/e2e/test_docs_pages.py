"""The documentation pages in a real headless browser (Debian's chromium), against a real server
with no way to reach any other host than itself: each page renders from the service's own assets,
meets no Content-Security-Policy violation, and calls the API with the key a user gives it.

Skipped where chromium is absent locally; required in CI (`tests/e2e/browser.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import Browser, chromium_path, headless_chromium
from tests.e2e.server import RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    chromium_path()  # skip (or fail in CI) before starting anything
    workdir = tmp_path_factory.mktemp("docs-pages")
    env = {"GRAPHQL_PLAYGROUND": "true", "GRAPHQL_INTROSPECTION": "true"}
    with start_server(workdir, workers=1, demo_traces=20, env=env) as server:
        match = re.search(r"demo API key \(developer\): (obs_\S+)", server.log.read_text())
        assert match, server.log.read_text()
        yield server, match.group(1)


@pytest.fixture(scope="module")
def browser(docs_server: object) -> Iterator[Browser]:
    with headless_chromium() as running:
        yield running


def operations(server: RunningServer) -> dict[str, str]:
    """operationId -> path, from the document the pages render."""
    document = httpx.get(f"{server.base}/schema/openapi.json", timeout=10).json()
    return {
        operation["operationId"]: path for path, methods in document["paths"].items() for operation in methods.values()
    }


def test_swagger_lists_every_operation_and_try_it_out_with_a_key_answers_200(
    docs_server: tuple[RunningServer, str], browser: Browser
) -> None:
    server, key = docs_server
    expected = operations(server)
    with browser.open(f"{server.base}/schema/swagger") as page:
        page.wait_for(f"document.querySelectorAll('.opblock').length === {len(expected)}", what="the operations")
        shown = page.evaluate("[...document.querySelectorAll('.opblock')].map(e => e.id)")
        assert {name.rsplit("-", 1)[-1] for name in shown} == set(expected)
        assert page.evaluate("!!document.querySelector('.btn.authorize')"), "no Authorize button"

        # Authorize with the key (Swagger UI's own call behind its Authorize dialog), then the
        # buttons a user presses: open GET /api/v1/models, Try it out, Execute.
        page.evaluate(f"window.ui.preauthorizeApiKey('apiKey', {json.dumps(key)})")
        block = "document.getElementById('operations-models-list_models')"
        page.evaluate(f"{block}.querySelector('.opblock-summary-control').click()")
        page.wait_for(f"!!{block}.querySelector('.try-out__btn')", what="Try it out")
        page.evaluate(f"{block}.querySelector('.try-out__btn').click()")
        page.wait_for(f"!!{block}.querySelector('.execute')", what="Execute")
        page.evaluate(f"{block}.querySelector('.execute').click()")
        cell = f"{block}.querySelector('.live-responses-table tbody .response-col_status')"
        status = page.wait_for(
            f"(({cell} || {{}}).innerText || '').trim()",
            what="the live response",
        )
        assert status.startswith("200"), status
        curl = page.evaluate(f"{block}.querySelector('.curl-command, .request-url').innerText")
        assert "X-API-Key" in curl or "/api/v1/models" in curl
        assert page.csp_violations() == []


def test_redoc_renders_every_operation(docs_server: tuple[RunningServer, str], browser: Browser) -> None:
    server, _ = docs_server
    expected = operations(server)
    with browser.open(f"{server.base}/schema/redoc") as page:
        page.wait_for(
            "document.querySelectorAll('[data-section-id^=\"operation/\"]').length > 0", what="Redoc's operations"
        )
        sections = page.evaluate(
            "[...document.querySelectorAll('[data-section-id^=\"operation/\"]')].map(e => e.dataset.sectionId)"
        )
        assert {section.split("/", 1)[1] for section in sections} >= set(expected)
        assert page.evaluate("document.body.innerText").count("X-API-Key") >= 1  # the security scheme
        # Redoc's "API docs by Redocly" footer links its logo from Redocly's CDN: blocked, as the
        # policy means to block every other host; nothing else is.
        assert set(page.csp_violations()) <= {"img-src https://cdn.redoc.ly/redoc/logo-mini.svg"}


def test_graphiql_sends_the_key_the_user_enters(docs_server: tuple[RunningServer, str], browser: Browser) -> None:
    server, key = docs_server
    with browser.open(f"{server.base}/graphql/playground") as page:
        page.wait_for("document.querySelectorAll('.CodeMirror').length >= 3", what="GraphiQL's editors")
        editors = "[...document.querySelectorAll('.CodeMirror')].map(e => e.CodeMirror)"
        headers = page.wait_for(
            f"{editors}.map(e => e.getValue()).find(v => v.includes('X-API-Key'))", what="the header editor"
        )
        assert json.loads(headers) == {"X-API-Key": ""}
        page.evaluate(
            f"{editors}.find(e => e.getValue().includes('X-API-Key'))"
            f".setValue({json.dumps(json.dumps({'X-API-Key': key}))})"
        )
        page.evaluate(f"{editors}[0].setValue('{{ models {{ id }} }}')")
        page.evaluate("document.querySelector('.graphiql-execute-button').click()")
        result = page.wait_for(
            f"{editors}.map(e => e.getValue()).find(v => v.includes('\"data\"') || v.includes('\"errors\"'))",
            what="the query's result",
        )
        answer = json.loads(result)
        assert "errors" not in answer, answer
        assert any(model["id"] == "openai/gpt-4o-mini" for model in answer["data"]["models"])
        assert page.csp_violations() == []


def test_the_pages_name_no_other_host(docs_server: tuple[RunningServer, str]) -> None:
    server, _ = docs_server
    for path in ("/schema/swagger", "/schema/redoc", "/graphql/playground"):
        page = httpx.get(f"{server.base}{path}", timeout=10)
        assert "http" not in page.text.replace(server.base, ""), path
        assert Path(path).name  # each page was answered
        assert "http" not in page.headers["content-security-policy"], path
