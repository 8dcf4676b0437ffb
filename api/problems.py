"""RFC 9457 problem details for every error the API returns.

Clients always get `application/problem+json` with `type`, `title`, `status`, `detail`,
`instance` and a stable `code`; validation problems add `errors: [{loc, msg}]`. Server-side
failures never carry internal messages: the detail is generic and the real cause is logged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.errors import CodexCloudError, RetryableError
from shared.log import current_trace_id

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:codex-cloud:problem:"

_HTTP_CODES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}
UNAVAILABLE_DETAIL = "A backing service is temporarily unavailable; retry later."


def problem_body(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    default_code, default_title = _HTTP_CODES.get(status, ("error", "Error"))
    code = code or default_code
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title or default_title,
        "status": status,
        "detail": detail or title or default_title,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    trace = current_trace_id()
    if trace:
        body["trace_id"] = trace
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    return body


def problem_response(
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> Response:
    body = problem_body(status, **fields)
    return Response(
        content=json.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def response_for_error(exc: CodexCloudError, instance: str | None) -> Response:
    headers: dict[str, str] = dict(getattr(exc, "headers", None) or {})
    detail = exc.detail
    extra = {k: v for k, v in exc.extra.items() if k in _PUBLIC_EXTRA}
    if isinstance(exc, RetryableError):
        headers.setdefault("Retry-After", str(max(1, math.ceil(exc.retry_after_s))))
        if exc.http_status >= 500:
            log.warning("dependency unavailable", extra={"fields": {"detail": exc.detail}})
            detail = UNAVAILABLE_DETAIL
    return problem_response(
        exc.http_status,
        code=exc.code,
        title=exc.title,
        detail=detail,
        instance=instance,
        extra=extra,
        headers=headers,
    )


# Extra fields of domain errors that are safe to show a caller.
_PUBLIC_EXTRA = frozenset({"errors", "job_id", "from", "to", "limit", "active_jobs"})


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "invalid")), "type": err.get("type")})
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into a problem response."""

    @app.exception_handler(CodexCloudError)
    async def _domain(request: Request, exc: CodexCloudError) -> Response:
        return response_for_error(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(
                400, detail="The request body is not valid JSON.", instance=request.url.path
            )
        return problem_response(
            422,
            detail="The request does not match the schema.",
            instance=request.url.path,
            extra={"errors": validation_errors(errors)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        return problem_response(
            exc.status_code,
            detail=detail,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        from google.api_core import exceptions as gexc

        if isinstance(exc, gexc.GoogleAPICallError | gexc.RetryError | TimeoutError):
            log.warning(
                "dependency error", extra={"fields": {"error": type(exc).__name__}}, exc_info=exc
            )
            return problem_response(
                503,
                code="dependency-unavailable",
                detail=UNAVAILABLE_DETAIL,
                instance=request.url.path,
                headers={"Retry-After": "2"},
            )
        log.error("unhandled error", exc_info=exc)
        return problem_response(
            500, detail="The server failed to handle the request.", instance=request.url.path
        )
