"""`GET /`: what a newcomer who opens the service's address needs, as links (JSON)."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.datastructures import State

from observatory_api import __version__
from observatory_api.core.vocabulary import ALIVE_PATH, API_PREFIX, GRAPHIQL_PATH, GRAPHQL_PATH, HEALTH_PATH, READY_PATH
from observatory_api.openapi_docs import OPEN, problems


class Landing(msgspec.Struct, omit_defaults=True):
    name: str
    version: str
    docs: dict[str, str]
    health: dict[str, str]
    readme: dict[str, str]
    graphql: dict[str, str] | None = None


# The pages a first-time user starts from (files in the repository, not served; the anchors are
# checked by tests/unit/test_doc_links.py).
README_SECTIONS = {
    "quickstart": "README.md (top): serve --demo, then curl with the printed key",
    "postgresql": "docs/configuration.md#running-against-postgresql-and-redis",
    "send_traces": "docs/ingest.md#quickstarts",
    "security": "docs/security.md",
}


@get(
    "/",
    operation_id="landing",
    summary="Where to start",
    tags=["health"],
    responses=problems(400),
    cache=False,
    security=OPEN,
    sync_to_thread=False,
)
def landing(state: State) -> Landing:
    """Links to the API docs, GraphQL, the health routes and the documentation's quickstarts; no data."""
    settings = state.settings
    docs = (
        {"swagger": "/schema/swagger", "redoc": "/schema/redoc", "openapi": "/schema/openapi.json", "api": API_PREFIX}
        if settings.features.docs
        else {"api": API_PREFIX}
    )
    graphql = None
    if settings.graphql.enabled:
        graphql = {"endpoint": GRAPHQL_PATH}
        if settings.graphql.playground:
            graphql["graphiql"] = GRAPHIQL_PATH
    return Landing(
        name="observatory-api",
        version=__version__,
        docs=docs,
        graphql=graphql,
        health={"alive": ALIVE_PATH, "ready": READY_PATH, "health": HEALTH_PATH},
        readme=README_SECTIONS,
    )
