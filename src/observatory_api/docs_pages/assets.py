"""Where the documentation assets are on disk, and the routes that serve them under ASSETS_PATH."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar import Router
from litestar.static_files import create_static_files_router

# Under /schema: answered without a credential, like the pages (security.authentication).
ASSETS_PATH = "/schema/assets"
SWAGGER_UI = f"{ASSETS_PATH}/swagger-ui"
REDOC = f"{ASSETS_PATH}/redoc"
GRAPHIQL = f"{ASSETS_PATH}/graphiql"
PAGES = f"{ASSETS_PATH}/pages"


class MissingAssets(RuntimeError):
    """A package that ships documentation assets is not installed (pyproject names it)."""


def _package_dir(name: str) -> Path:
    # find_spec of a top-level package does not import it (drf_spectacular_sidecar imports Django).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssets(f"the package {name} is not installed: pip install -e . installs it")
    return Path(next(iter(spec.submodule_search_locations)))


def asset_directories() -> dict[str, Path]:
    """URL path -> folder of files, for every asset the documentation pages load."""
    sidecar = _package_dir("drf_spectacular_sidecar") / "static" / "drf_spectacular_sidecar"
    graphiql = _package_dir("graphene_django_graphiql_static") / "static" / "graphene_django_graphiql_static"
    return {
        SWAGGER_UI: sidecar / "swagger-ui-dist",
        REDOC: sidecar / "redoc" / "bundles",
        GRAPHIQL: graphiql,
        PAGES: Path(__file__).parent / "static",
    }


def asset_routers() -> list[Router]:
    return [
        create_static_files_router(
            path=path,
            directories=[directory],
            include_in_schema=False,
            name=f"docs-assets-{path.rsplit('/', 1)[-1]}",
        )
        for path, directory in asset_directories().items()
    ]
