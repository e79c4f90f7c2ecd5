"""Response documentation shared by the controllers."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from observatory_api.errors import Problem

BAD_REQUEST = {
    400: ResponseSpec(data_container=Problem, description="Invalid input (problem+json)", generate_examples=False)
}
NOT_FOUND = {404: ResponseSpec(data_container=Problem, description="Not found (problem+json)", generate_examples=False)}
