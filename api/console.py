"""The web console: static pages at `/console` (plain HTML/CSS/JS in `api/console/`), plus the
one route a browser needs beyond the public API.

Browsers' EventSource cannot send an API key header, so the console asks for a short-lived
events token (`POST /console/api/jobs/{id}/events-token`, authenticated with the key like any
request) and follows `GET /console/api/jobs/{id}/events?token=…`, which serves exactly the
stream of `GET /v2/jobs/{id}/events`. The token is the stream token of `shared.tokens`, bound
to one job and its tenant, and expires after `stream_token_ttl_s`. Both routes stay out of the
published API description: they exist for the console only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Header, Query
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.auth import issue_stream_token
from api.deps import Reader, ServicesDep
from api.routes import jobs
from shared.apikeys import Scope
from shared.errors import Forbidden, Unauthorized
from shared.tokens import verify_stream_token

CONSOLE_DIR = Path(__file__).with_name("console")
router = APIRouter(include_in_schema=False)
JobId = Annotated[str, PathParam(min_length=1, max_length=128)]


def _events_session(job_id: str) -> str:
    # A namespace of its own, so a WebSocket session token never doubles as an events token.
    return f"events/{job_id}"


@router.post("/console/api/jobs/{job_id}/events-token")
def events_token(job_id: JobId, principal: Reader, services: ServicesDep) -> dict[str, Any]:
    services.jobs.require_job(job_id, tenant=principal.tenant)
    settings = services.settings
    ttl = settings.stream_token_ttl_s
    token = issue_stream_token(
        settings, principal, session_id=_events_session(job_id), job_id=job_id
    )
    expires = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) + ttl, UTC)
    return {
        "token": token,
        "expires_at": expires.isoformat(),
        "events_url": f"/console/api/jobs/{quote(job_id, safe='')}/events?token={token}",
    }


@router.get("/console/api/jobs/{job_id}/events")
async def token_events(
    job_id: JobId,
    services: ServicesDep,
    token: Annotated[str, Query(min_length=1, max_length=2048)],
    last_event_id: Annotated[int | None, Query(ge=-1, le=10**12)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=32)
    ] = None,
) -> Response:
    claims = verify_stream_token(
        services.settings.token_signing_key.get_secret_value(),
        token,
        session_id=_events_session(job_id),
    )
    if claims.job_id != job_id:
        raise Forbidden("this token does not allow reading this job's events")
    # The token acts for a key (or gateway caller) that may be gone, or have lost its read
    # scope, since it was issued.
    principal = await run_in_threadpool(services.auth.stream_principal, claims)
    if principal is None:
        raise Unauthorized("the identity this token was issued to is no longer valid")
    services.auth.authorize(principal, Scope.READ)
    # Same stream as the public route (tenant check, replay after Last-Event-ID, heartbeats).
    return await jobs.job_events(job_id, principal, services, last_event_id_header, last_event_id)


def mount_console(app: FastAPI) -> None:
    """Serve the console at /console (index.html for the directory)."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
