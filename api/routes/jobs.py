"""Job submission and job resources: thin handlers over `api.service`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from api import service
from api.auth import Principal, issue_stream_token
from api.deps import Reader, Services, ServicesDep, Writer
from api.schemas import (
    SSE_EVENT_SCHEMA,
    Artifact,
    ArtifactList,
    AsyncAccepted,
    JobList,
    JobView,
)
from api.streaming import event_message, server_message, sse_frame
from api.watch import is_final_event, stored_events
from shared.errors import InvalidInput
from shared.log import current_trace_id
from shared.models import Channel, JobRecord, JobRequest, JobStatus, MessageType, Mode

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=128, description="The job id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and body → the same job; same key, other body → 409.",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"


def _json(content: Any, status: int, replayed: bool = False) -> JSONResponse:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return JSONResponse(_jsonable(content), status_code=status, headers=headers)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def _execute(
    body: JobRequest,
    principal: Principal,
    services: Services,
    idempotency_key: str | None,
    force_mode: Mode | None = None,
) -> Response:
    settings = services.settings
    if force_mode is not None and body.mode is not force_mode:
        body = body.model_copy(update={"mode": force_mode})
    caller = service.Caller(principal.tenant, principal.key_id, current_trace_id())
    submission = await service.submit_job(
        services.writer,
        services.jobs,
        services.active_jobs,
        settings,
        body,
        caller=caller,
        max_active_jobs=settings.max_active_jobs_per_tenant,
        idempotency_key=idempotency_key,
    )
    job = submission.job
    replayed = not submission.created
    base = settings.api_base_url
    mode = job.request.mode
    if mode is Mode.SYNC:
        record: JobRecord | None = job
        if not job.status.terminal:
            wait_s = min(
                job.request.timeout_ms / 1000 + settings.sync_wait_margin_s,
                settings.sync_max_wait_s,
            )
            record = await services.listeners.wait_terminal(job.job_id, wait_s)
        if record is not None:
            return _json(service.sync_view(record), 200, replayed)
        # Waited long enough: answer like async instead of holding the connection.
        latest = await run_in_threadpool(services.jobs.require_job, job.job_id)
        return _json(service.async_view(latest, base, Mode.SYNC), 202, replayed)
    if mode is Mode.STREAM:
        expires = int(datetime.now(UTC).timestamp()) + settings.stream_token_ttl_s
        token = issue_stream_token(
            settings, principal, session_id=job.session_id, job_id=job.job_id
        )
        content: dict[str, Any] = {
            "session_id": job.session_id,
            "mode": mode.value,
            "job_id": job.job_id,
            "websocket_url": f"{settings.ws_base_url}/v2/stream/{job.session_id}?token={token}",
            "connection_token": token,
            "token_expires_at": datetime.fromtimestamp(expires, UTC),
            "events_url": service.job_urls(base, job.job_id)["events_url"],
        }
        if submission.webhook_secret:
            content["webhook_secret"] = submission.webhook_secret
        return _json(content, 200, replayed)
    view = service.async_view(job, base, mode)
    if submission.webhook_secret:
        view["webhook_secret"] = submission.webhook_secret
    return _json(view, 202, replayed)


_EXEC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "sync: the finished job; stream: where to connect",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/SyncResult"},
                        {"$ref": "#/components/schemas/StreamAccepted"},
                    ]
                }
            }
        },
    },
    202: {"description": "async (or a sync wait that ran out)", "model": AsyncAccepted},
}


@router.post(
    "/v2/exec",
    summary="Run a prompt (sync, async or stream)",
    status_code=202,
    response_model=None,
    responses=_EXEC_RESPONSES,
)
async def execute(
    body: JobRequest,
    principal: Writer,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _execute(body, principal, services, idempotency_key)


@router.post(
    "/v2/exec/async",
    summary="Run a prompt asynchronously (mode forced to async)",
    status_code=202,
    response_model=None,
    responses={202: {"description": "accepted", "model": AsyncAccepted}},
)
async def execute_async(
    body: JobRequest,
    principal: Writer,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _execute(body, principal, services, idempotency_key, force_mode=Mode.ASYNC)


@router.get("/v2/jobs", summary="List the caller's jobs, newest first", response_model=JobList)
def list_jobs(
    principal: Reader,
    services: ServicesDep,
    status: Annotated[JobStatus | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> dict[str, Any]:
    if cursor is not None:
        service.check_list_cursor(cursor)
    page = services.jobs.list_jobs(
        principal.tenant, status=status, channel=channel, limit=limit, cursor=cursor
    )
    base = services.settings.api_base_url
    return {
        "jobs": [service.job_view(j, base) for j in page.jobs],
        "next_cursor": page.next_cursor,
    }


@router.get("/v2/jobs/{job_id}", summary="One job", response_model=JobView)
def get_job(job_id: JobId, principal: Reader, services: ServicesDep) -> dict[str, Any]:
    job = services.jobs.require_job(job_id, tenant=principal.tenant)
    return service.job_view(job, services.settings.api_base_url)


def _cancel(job_id: str, principal: Principal, services: Services) -> Response:
    job = service.cancel_job(services.jobs, job_id, tenant=principal.tenant)
    # A running job is only flagged: its worker stops it, so the answer is "accepted".
    status = 200 if job.status.terminal else 202
    return _json(service.job_view(job, services.settings.api_base_url), status)


_CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "cancelled", "model": JobView},
    202: {"description": "cancel requested; the worker stops the job", "model": JobView},
}


@router.post(
    "/v2/jobs/{job_id}:cancel",
    summary="Cancel a job",
    response_model=None,
    responses=_CANCEL_RESPONSES,
)
def cancel_job(job_id: JobId, principal: Writer, services: ServicesDep) -> Response:
    return _cancel(job_id, principal, services)


@router.delete(
    "/v2/jobs/{job_id}",
    summary="Cancel a job (same as :cancel)",
    response_model=None,
    responses=_CANCEL_RESPONSES,
)
def delete_job(job_id: JobId, principal: Writer, services: ServicesDep) -> Response:
    return _cancel(job_id, principal, services)


@router.get(
    "/v2/jobs/{job_id}/artifacts",
    summary="Files the job produced (outputs bucket)",
    response_model=ArtifactList,
)
def list_artifacts(job_id: JobId, principal: Reader, services: ServicesDep) -> dict[str, Any]:
    services.jobs.require_job(job_id, tenant=principal.tenant)
    blobs = service.list_artifacts(services.adapters.storage, job_id)
    base = services.settings.api_base_url.rstrip("/")
    prefix = f"{job_id}/"
    artifacts = [
        Artifact(
            name=b.name.removeprefix(prefix),
            size=b.size,
            content_type=b.content_type,
            url=f"{base}/v2/jobs/{job_id}/artifacts/{b.name.removeprefix(prefix)}",
        )
        for b in blobs
    ]
    return {"job_id": job_id, "artifacts": artifacts}


@router.get(
    "/v2/jobs/{job_id}/artifacts/{name:path}",
    summary="Download one artifact (302 to a signed URL, or the bytes)",
    response_model=None,
    responses={
        200: {
            "description": "the artifact's bytes",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        302: {"description": "redirect to a short-lived signed URL"},
    },
)
def get_artifact(
    job_id: JobId,
    name: Annotated[str, Path(min_length=1, max_length=1024)],
    principal: Reader,
    services: ServicesDep,
) -> Response:
    services.jobs.require_job(job_id, tenant=principal.tenant)
    settings = services.settings
    download = service.get_artifact(
        services.adapters.storage, job_id, name, url_ttl_s=settings.artifact_url_ttl_s
    )
    if download.signed_url is not None:
        return RedirectResponse(download.signed_url, status_code=302)
    # Streamed as it is read from storage, so no artifact is too large to proxy.
    return StreamingResponse(
        download.chunks,
        media_type=download.content_type,
        headers={
            "Content-Disposition": content_disposition(name.rsplit("/", 1)[-1]),
            # Lets a client tell a body cut short by a failed read from a complete one.
            "Content-Length": str(download.size),
        },
    )


# RFC 5987 attr-char: what may stay unescaped in an ext-value.
_ATTR_CHARS = "!#$&+-.^_`|~"


def content_disposition(filename: str) -> str:
    """An RFC 6266 attachment header that names any file: a plain-ASCII `filename` for old
    clients, the exact name as RFC 5987 `filename*` (header values must be Latin-1)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    exact = quote(filename, safe=_ATTR_CHARS, errors="replace")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"


# ---- Server-Sent Events ---------------------------------------------------------------------


def _last_event_id(header: str | None, query: int | None) -> int:
    # The header wins: a browser EventSource reconnects to the same URL (query and all) and
    # reports the newer position in the header.
    if header is None or not header.strip():
        return query if query is not None else -1
    try:
        value = int(header.strip())
    except ValueError:
        raise InvalidInput(
            "Last-Event-ID must be an event sequence number",
            errors=[{"loc": ["header", "Last-Event-ID"], "msg": "not an integer"}],
        ) from None
    return max(-1, value)


async def _sse(services: Services, job: JobRecord, after_seq: int) -> AsyncIterator[str]:
    heartbeat_s = services.settings.stream_heartbeat_s
    yield f"retry: {int(heartbeat_s * 1000)}\n\n"
    if job.status.terminal:
        # Nothing more will be written: replay what is stored and finish.
        async for event in stored_events(services.jobs, job.job_id, after_seq):
            yield sse_frame(event_message(job.session_id, event), event_id=event.seq)
        return
    async with services.listeners.events(job.job_id, after_seq) as feed:
        while True:
            batch = await feed.next_batch(heartbeat_s)
            if not batch:
                beat = server_message(
                    job.session_id, MessageType.HEARTBEAT, {"last_seq": feed.last_seq}
                )
                yield sse_frame({**beat, "job_id": job.job_id}, event="heartbeat")
                continue
            for event in batch:
                yield sse_frame(event_message(job.session_id, event), event_id=event.seq)
                if is_final_event(event):
                    return


@router.get(
    "/v2/jobs/{job_id}/events",
    summary="The job's events as Server-Sent Events (replays after Last-Event-ID)",
    response_model=None,
    responses={
        200: {
            "description": "an event stream; ends after the job's final `complete` event",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        }
    },
)
async def job_events(
    job_id: JobId,
    principal: Reader,
    services: ServicesDep,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=32)
    ] = None,
    last_event_id: Annotated[int | None, Query(ge=-1, le=10**12)] = None,
) -> Response:
    after = _last_event_id(last_event_id_header, last_event_id)
    job = await run_in_threadpool(services.jobs.require_job, job_id, tenant=principal.tenant)
    stream = _sse(services, job, after)
    return StreamingResponse(
        _closing(stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _closing(stream: AsyncIterator[str]) -> AsyncIterator[str]:
    # Make sure the listener is released whether the stream ends or the client goes away.
    try:
        async for chunk in stream:
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]
