"""Pure ASGI middleware: request context (trace ids, access log, metrics, rate-limit headers)
and the body guard (size limit before parsing, JSON-only media type)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_body
from shared import metrics
from shared.log import log_context, parse_trace_header

log = logging.getLogger("api.access")

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_problem(send: Send, status: int, detail: str, path: str) -> None:
    body = json.dumps(problem_body(status, detail=detail, instance=path)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """413 for bodies over the limit (by Content-Length, or counted while streaming) and 415
    for bodies that are not JSON, both before any handler parses a byte."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].encode() not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = scope["path"]
        length_header = headers.get("content-length")
        has_body = headers.get("transfer-encoding") is not None
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                await _send_problem(send, 400, "Invalid Content-Length header.", path)
                return
            if length > self.max_body_bytes:
                await _send_problem(
                    send, 413, f"The body exceeds {self.max_body_bytes} bytes.", path
                )
                return
            has_body = has_body or length > 0
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if (
            has_body
            and content_type
            and not (content_type == "application/json" or content_type.endswith("+json"))
        ):
            await _send_problem(send, 415, "Send the body as application/json.", path)
            return

        received = 0
        limit = self.max_body_bytes
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _send_problem(send, 413, f"The body exceeds {limit} bytes.", path)


class _BodyTooLarge(StarletteHTTPException):
    # An HTTPException so that the framework's body parsing passes it through unchanged and the
    # problem handler renders it, when the limit is crossed while a handler reads the body.
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"The body exceeds {limit} bytes.")


class RequestContext:
    """Trace ids into the log context, one access log line, Prometheus metrics per route
    template, and the rate-limit headers the auth dependency computed."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        trace_id, span_id = parse_trace_header(_headers(scope))
        started = time.perf_counter()
        status = 500 if scope["type"] == "http" else 101
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                extra = state.get("ratelimit_headers")
                if extra:
                    present = {k.lower() for k, _ in message.get("headers", [])}
                    message["headers"] = list(message.get("headers", [])) + [
                        (k.lower().encode(), v.encode())
                        for k, v in extra.items()
                        if k.lower().encode() not in present
                    ]
            await send(message)

        with log_context(trace_id=trace_id, span_id=span_id):
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                elapsed = time.perf_counter() - started
                if scope["type"] == "http":
                    metrics.HTTP_REQUESTS.labels(self.service, template, str(status)).inc()
                    metrics.HTTP_REQUEST_DURATION.labels(self.service, template).observe(elapsed)
                if template not in _QUIET_ROUTES:
                    log.info(
                        "request",
                        extra={
                            "fields": {
                                "method": scope.get("method", "WS"),
                                "route": template,
                                "status": status,
                                "duration_ms": round(elapsed * 1000, 2),
                            }
                        },
                    )
