"""The HTML of the three documentation pages (their CSPs: `security.headers.DOCS_PAGE_CSP`)."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.response import Response

from observatory_api.docs_pages.assets import GRAPHIQL, PAGES, REDOC, SWAGGER_UI

SCHEMA_PATH = "/schema"
SWAGGER_PATH = f"{SCHEMA_PATH}/swagger"
REDOC_PATH = f"{SCHEMA_PATH}/redoc"
OPENAPI_JSON = f"{SCHEMA_PATH}/openapi.json"


def _page(title: str, head: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{head}</head><body>{body}</body></html>"
    ).encode()


class OfflineSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI from the service's own assets; the document is fetched from /schema/openapi.json."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_UI}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_UI}/swagger-ui-standalone-preset.js",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        head = (
            f'<link rel="icon" type="image/png" href="{SWAGGER_UI}/favicon-32x32.png">'
            f'<link rel="stylesheet" href="{self.css_url}">'
            f'<script src="{self.js_url}"></script><script src="{self.standalone_preset_js_url}"></script>'
        )
        body = (
            f'<div id="swagger-container" data-spec-url="{OPENAPI_JSON}"></div>'
            f'<script src="{PAGES}/swagger.js"></script>'
        )
        return _page(f"{openapi_schema['info']['title']} - Swagger UI", head, body)


class OfflineRedocRenderPlugin(RedocRenderPlugin):
    """Redoc from the service's own bundle, without Google Fonts; its `<redoc>` element starts it."""

    def __init__(self) -> None:
        super().__init__(js_url=f"{REDOC}/redoc.standalone.js", google_fonts=False)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        body = f'<redoc spec-url="{OPENAPI_JSON}"></redoc><script src="{self.js_url}"></script>'
        return _page(f"{openapi_schema['info']['title']} - Redoc", "", body)


def graphiql_page(path: str, endpoint: str) -> HTTPRouteHandler:
    """GraphiQL at `path`, posting to `endpoint` with the headers its header editor holds."""
    html = _page(
        "observatory-api - GraphiQL",
        f'<link rel="stylesheet" href="{GRAPHIQL}/graphiql.min.css"><link rel="stylesheet" href="{PAGES}/graphiql.css">'
        f'<script src="{GRAPHIQL}/react.production.min.js"></script>'
        f'<script src="{GRAPHIQL}/react-dom.production.min.js"></script>'
        f'<script src="{GRAPHIQL}/graphiql.min.js"></script>',
        f'<div id="graphiql" data-endpoint="{escape(endpoint)}"></div><script src="{PAGES}/graphiql.js"></script>',
    )

    @get(path, include_in_schema=False, sync_to_thread=False)
    def graphql_playground() -> Response[bytes]:
        """GraphiQL (development only): put an API key in its X-API-Key header, or a bearer token."""
        return Response(html, media_type="text/html")

    return graphql_playground
