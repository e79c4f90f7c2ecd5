"""SessionController: `GET /sessions`, `GET /sessions/{session_id}`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import FromQuery, PathParameter

from observatory_api.core.params import CURSOR, IDENT, LIMIT, TIME_FROM, TIME_TO
from observatory_api.core.query import PLAIN_ID, check_plain, resolve_limit, resolve_window
from observatory_api.operations import FIRST_SESSION, SESSION_FIRST_TRACE, ResourceController, api_get
from observatory_api.sessions.repository import SessionRepository, SessionSort
from observatory_api.sessions.schemas import SessionDetail, SessionPage
from observatory_api.settings import Settings


class SessionController(ResourceController):
    path = "/sessions"

    @api_get("/", "list_sessions", "List sessions", cache=True, session=FIRST_SESSION)
    async def list_sessions(
        self,
        sessions: NamedDependency[SessionRepository],
        settings: NamedDependency[Settings],
        from_: Annotated[datetime | None, TIME_FROM] = None,
        to: Annotated[datetime | None, TIME_TO] = None,
        user_id: Annotated[str | None, IDENT] = None,
        environment: Annotated[str | None, IDENT] = None,
        sort: FromQuery[SessionSort] = "-last_seen",
        limit: Annotated[int | None, LIMIT] = None,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> SessionPage:
        """Sessions active in the time range, with trace count, first and last seen, tokens and cost."""
        check_plain(user_id, "user_id")
        check_plain(environment, "environment")
        return await sessions.list_sessions(
            window=resolve_window(from_, to, settings.query),
            user_id=user_id,
            environment=environment,
            sort=sort,
            limit=resolve_limit(limit, settings.query),
            cursor=cursor,
        )

    @api_get(
        "/{session_id:str}", "get_session", "Get a session with its traces", 404, cache=True, trace=SESSION_FIRST_TRACE
    )
    async def get_session(
        self,
        sessions: NamedDependency[SessionRepository],
        settings: NamedDependency[Settings],
        session_id: Annotated[str, PathParameter(max_length=200, schema_extra={"pattern": PLAIN_ID.pattern})],
        limit: Annotated[int | None, LIMIT] = None,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> SessionDetail:
        """The session summary and its traces in time order, oldest first."""
        check_plain(session_id, "session_id", "path")
        return await sessions.get_session(session_id, limit=resolve_limit(limit, settings.query), cursor=cursor)
