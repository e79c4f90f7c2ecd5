"""AdminController: API keys (never their secrets) and the response cache. Needs the admin role."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State

from observatory_api.auth.schemas import ApiKeyList, CachePurged
from observatory_api.openapi_docs import AUTHENTICATED, api_responses
from observatory_api.security.api_keys import ApiKeyRepository
from observatory_api.security.permissions import requires
from observatory_api.security.resources import security_resources
from observatory_api.security.response_cache import STORE_NAME


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [requires("admin")]
    security = AUTHENTICATED

    @get("/api-keys", operation_id="list_api_keys", summary="List API keys", responses=api_responses(), cache=False)
    async def list_api_keys(self, state: State) -> ApiKeyList:
        """Every key with its prefix, role, expiry and revocation; secrets and hashes are never shown."""
        return ApiKeyList(data=await ApiKeyRepository(security_resources(state).read_engine).list_keys())

    @post(
        "/cache/purge",
        operation_id="purge_cache",
        summary="Purge the response cache",
        status_code=200,
        responses=api_responses(),
    )
    async def purge_cache(self, request: Request[Any, Any, Any]) -> CachePurged:
        """Drops every cached response (all roles, all routes)."""
        await request.app.stores.get(STORE_NAME).delete_all()
        return CachePurged(purged=True)
