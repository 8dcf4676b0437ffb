"""The WebSocket session protocol, and the admin view of open connections.

Client → server frames:
- `{"prompt": "...", "stream_type": "interactive|progress|full", ...JobRequest fields}` runs one
  turn of the session (a job with this session id); prompts run one after another. Each is a
  submission: the key's write scope and rate limit apply as to `POST /v2/exec`.
- `{"type": "ping"}` → `{"type": "pong", ...}` (answered at once, even while a job runs).
- `{"type": "cancel"}` cancels the job currently running for this connection.
Any other frame (not JSON, binary, unknown type) gets an `error` message; the session stays open.
Server → client frames: `{session_id, message_type, data, timestamp, job_id?, seq?}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from api import service
from api.auth import Principal
from api.deps import Admin, Services, ServicesDep, services_of
from api.problems import UNAVAILABLE_DETAIL, problem_response, validation_errors
from api.schemas import BroadcastRequest, BroadcastResult, BroadcastTarget, ConnectionList
from api.streaming import (
    Connection,
    StreamType,
    event_message,
    now_iso,
    server_message,
    wanted,
)
from api.watch import is_final_event, stored_events
from shared.apikeys import Scope
from shared.errors import CodexCloudError, RateLimited, RetryableError, Unauthorized
from shared.log import log_context
from shared.models import JobRecord, JobRequest, MessageType, Mode
from shared.tokens import StreamClaims, verify_stream_token

log = logging.getLogger(__name__)
router = APIRouter()

# Job request fields a WebSocket prompt may set (session and mode are the connection's).
_PROMPT_FIELDS = frozenset(JobRequest.model_fields) - {"session_id", "mode", "idempotency_key"}


class _Session:
    def __init__(
        self, websocket: WebSocket, services: Services, claims: StreamClaims, session_id: str
    ) -> None:
        self.ws = websocket
        self.services = services
        self.claims = claims
        self.session_id = session_id
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.send_lock = asyncio.Lock()
        self.current_job: str | None = None
        self.conn: Connection | None = None

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message, default=str))

    async def notify(self, message_type: MessageType, data: dict[str, Any], **extra: Any) -> None:
        await self.send(server_message(self.session_id, message_type, data, **extra))

    async def read_loop(self) -> None:
        """Answer pings and cancels immediately; queue prompts for the turn loop."""
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(frame.get("code", 1000), frame.get("reason"))
            raw = frame.get("text")
            if raw is None:
                # A binary frame is just another invalid frame: answer it, keep the session.
                await self.notify(
                    MessageType.ERROR,
                    {"code": "bad-frame", "message": "binary frames are not supported"},
                )
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                await self.notify(MessageType.ERROR, {"code": "bad-frame", "message": "not JSON"})
                continue
            if not isinstance(message, dict):
                await self.notify(MessageType.ERROR, {"code": "bad-frame", "message": "not JSON"})
                continue
            kind = message.get("type")
            if kind == "ping":
                await self.send(
                    {"type": "pong", "session_id": self.session_id, "timestamp": now_iso()}
                )
            elif kind == "cancel":
                await self.guarded(self.cancel_current())
            elif kind in (None, "prompt"):
                await self.inbox.put(message)
            else:
                await self.notify(
                    MessageType.ERROR, {"code": "bad-frame", "message": f"unknown type {kind!r}"}
                )

    async def acting_principal(self) -> Principal | None:
        """Who this socket acts for now; None (after an error frame and closing the socket)
        once that identity is gone: its key revoked, or a gateway caller's sign-in expired."""
        principal = await run_in_threadpool(self.services.auth.stream_principal, self.claims)
        if principal is None:
            await self.notify(MessageType.ERROR, {"code": "unauthorized", "message": _REVOKED})
            await self.ws.close(code=1008)
        return principal

    async def cancel_current(self) -> None:
        # A cancel acts on the job as POST /v2/jobs/{id}:cancel does: same scope, and not for
        # an identity that is gone.
        principal = await self.acting_principal()
        if principal is None:
            return
        self.services.auth.authorize(principal, Scope.WRITE)
        job_id = self.current_job
        if job_id is None:
            await self.notify(MessageType.ERROR, {"code": "no-job", "message": "nothing to cancel"})
            return
        try:
            await run_in_threadpool(
                service.cancel_job, self.services.jobs, job_id, tenant=self.claims.tenant
            )
        except CodexCloudError as exc:
            await self.notify(MessageType.ERROR, {"code": exc.code, "message": exc.detail})

    async def turn_loop(self, stream_type: StreamType) -> None:
        if self.claims.job_id:
            await self.guarded(self.follow(self.claims.job_id, stream_type))
        heartbeat_s = self.services.settings.stream_heartbeat_s
        while True:
            try:
                message = await asyncio.wait_for(self.inbox.get(), timeout=heartbeat_s)
            except TimeoutError:
                await self.notify(MessageType.HEARTBEAT, {"server": True})
                continue
            await self.guarded(self.run_prompt(message, stream_type))

    async def guarded(self, turn: Awaitable[None]) -> None:
        """Run one turn (or cancel); a failure in it is answered with an `error` frame, without
        internals as in HTTP problem details, and the session goes on."""
        try:
            await turn
        except WebSocketDisconnect:
            raise
        except CodexCloudError as exc:
            data: dict[str, Any] = {"code": exc.code, "message": exc.detail}
            if isinstance(exc, RetryableError) and exc.http_status >= 500:
                log.warning("stream turn failed: %s", exc.detail)
                data["message"] = UNAVAILABLE_DETAIL
            if exc.extra.get("errors"):
                data["errors"] = exc.extra["errors"]
            if isinstance(exc, RateLimited):
                data["retry_after_s"] = math.ceil(exc.retry_after_s)
            await self.notify(MessageType.ERROR, data)
        except Exception:
            log.exception("stream turn failed")
            await self.notify(
                MessageType.ERROR,
                {"code": "internal", "message": "The server failed to handle the request."},
            )

    async def run_prompt(self, message: dict[str, Any], default: StreamType) -> None:
        try:
            stream_type = StreamType(message.get("stream_type") or default)
        except ValueError:
            await self.notify(
                MessageType.ERROR,
                {
                    "code": "validation-error",
                    "message": "stream_type must be one of "
                    + ", ".join(s.value for s in StreamType),
                },
            )
            return
        fields = {k: v for k, v in message.items() if k in _PROMPT_FIELDS}
        unknown = set(message) - _PROMPT_FIELDS - {"type", "stream_type"}
        try:
            if unknown:
                raise ValueError(f"unknown fields: {sorted(unknown)}")
            request = JobRequest.model_validate(
                {**fields, "session_id": self.session_id, "mode": Mode.STREAM.value}
            )
        except ValidationError as exc:
            errors = validation_errors(exc.errors())
            await self.notify(
                MessageType.ERROR,
                {"code": "validation-error", "message": "invalid prompt", "errors": errors},
            )
            return
        except ValueError as exc:
            await self.notify(MessageType.ERROR, {"code": "validation-error", "message": str(exc)})
            return
        auth = self.services.auth
        principal = await self.acting_principal()
        if principal is None:
            return  # the socket outlived its identity: no more jobs on it
        # A prompt is a submission: the same scope and the same per-key limit as POST
        # /v2/exec (a refusal becomes an error frame in `guarded`; the session goes on).
        auth.authorize(principal, Scope.WRITE)
        await auth.throttle(principal)
        settings = self.services.settings
        # A refusal (CodexCloudError) becomes an error frame in `guarded`.
        submission = await service.submit_job(
            self.services.writer,
            self.services.jobs,
            self.services.active_jobs,
            settings,
            request,
            caller=service.Caller(self.claims.tenant, self.claims.key_id),
            max_active_jobs=settings.max_active_jobs_per_tenant,
        )
        if self.conn is not None:
            self.conn.jobs_started += 1
        await self.follow(submission.job.job_id, stream_type)

    async def follow(self, job_id: str, stream_type: StreamType) -> None:
        """Forward one job's events (from its first) until its final `complete` event."""
        self.current_job = job_id
        heartbeat_s = self.services.settings.stream_heartbeat_s
        try:
            job: JobRecord = await run_in_threadpool(
                self.services.jobs.require_job, job_id, tenant=self.claims.tenant
            )
            if job.status.terminal:
                # Nothing more will be written: replay every stored page, up to `complete`.
                async for event in stored_events(self.services.jobs, job_id):
                    if wanted(stream_type, event.message_type):
                        await self.send(event_message(self.session_id, event))
                return
            async with self.services.listeners.events(job_id, -1) as feed:
                while True:
                    batch = await feed.next_batch(heartbeat_s)
                    if not batch:
                        await self.notify(MessageType.HEARTBEAT, {"server": True}, job_id=job_id)
                        continue
                    for event in batch:
                        if wanted(stream_type, event.message_type):
                            await self.send(event_message(self.session_id, event))
                        if is_final_event(event):
                            return
        finally:
            self.current_job = None


_REVOKED = (
    "the identity this stream was opened with is no longer valid (API key revoked or "
    "sign-in expired)"
)


async def _deny(websocket: WebSocket, exc: CodexCloudError) -> None:
    response: Response = problem_response(exc.http_status, code=exc.code, detail=exc.detail)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        # The server lacks the denial-response extension: a plain close (403 to the client).
        await websocket.close(code=1008)


@router.websocket("/v2/stream/{session_id}")
async def stream_session(websocket: WebSocket, session_id: str) -> None:
    services = services_of(websocket)
    token = websocket.query_params.get("token", "")
    try:
        claims = verify_stream_token(
            services.settings.token_signing_key.get_secret_value(), token, session_id=session_id
        )
        stream_type = StreamType(websocket.query_params.get("stream_type") or StreamType.FULL)
    except Unauthorized as exc:
        await _deny(websocket, exc)
        return
    except ValueError:
        await websocket.close(code=1008)
        return
    if await run_in_threadpool(services.auth.stream_principal, claims) is None:
        await _deny(websocket, Unauthorized(_REVOKED))
        return
    await websocket.accept()
    session = _Session(websocket, services, claims, session_id)
    session.conn = services.connections.add(
        session_id=session_id, tenant=claims.tenant, key_id=claims.key_id, send=session.send
    )
    session.conn.stream_type = stream_type
    with log_context(session_id=session_id, tenant=claims.tenant):
        log.info("stream connected")
        reader = asyncio.create_task(session.read_loop())
        turns = asyncio.create_task(session.turn_loop(stream_type))
        try:
            done, _ = await asyncio.wait({reader, turns}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None and not isinstance(error, WebSocketDisconnect):
                    log.warning("stream ended by error", exc_info=error)
        finally:
            for task in (reader, turns):
                task.cancel()
            for task in (reader, turns):
                with contextlib.suppress(BaseException):
                    await task
            services.connections.remove(session.conn)
            with contextlib.suppress(Exception):
                await websocket.close()
            log.info("stream closed")


# ---- admin ----------------------------------------------------------------------------------


@router.get(
    "/v2/connections",
    tags=["admin"],
    summary="WebSocket connections open on every API instance (admin scope)",
    response_model=ConnectionList,
)
async def list_connections(principal: Admin, services: ServicesDep) -> dict[str, Any]:
    connections, answers = await services.fanout.connections()
    return {"connections": connections, "scope": answers.scope, "instances": answers.instances}


@router.post(
    "/v2/broadcast",
    tags=["admin"],
    summary="Send a message to open WebSocket connections on every instance (admin scope)",
    response_model=BroadcastResult,
)
async def broadcast(
    body: BroadcastRequest, principal: Admin, services: ServicesDep
) -> dict[str, Any]:
    value: str | None = None
    if body.target is BroadcastTarget.SESSION:
        value = body.session_id
        field = "session_id"
    elif body.target is BroadcastTarget.TENANT:
        value = body.tenant
        field = "tenant"
    if body.target is not BroadcastTarget.ALL and not value:
        from shared.errors import InvalidInput

        raise InvalidInput(
            f"target {body.target.value} needs {field}",
            errors=[{"loc": ["body", field], "msg": "required for this target"}],
        )
    message = server_message(
        "", body.message_type, body.data, broadcast=True, sender=principal.key_id
    )
    # A tenant given with a session target narrows it to that tenant's session.
    narrow = body.tenant if body.target is BroadcastTarget.SESSION else None
    delivered, answers = await services.fanout.broadcast(
        body.target.value, value, message, tenant=narrow
    )
    return {
        "target": body.target.value,
        "delivered": delivered,
        "instances": answers.instances,
        "scope": answers.scope,
    }
