"""Typed errors: every API error carries its RFC 9457 problem fields."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of everything the SDK raises."""


class ConnectionFailed(ClientError):
    """The API could not be reached (refused, DNS, TLS, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


class StreamError(ClientError):
    """A WebSocket session failed (handshake refused or a protocol error)."""


class ApiError(ClientError):
    """An HTTP error answer; the fields are the problem+json body's."""

    def __init__(
        self,
        status: int,
        *,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        code: str = "",
        errors: list[dict[str, Any]] | None = None,
        instance: str | None = None,
        trace_id: str | None = None,
        retry_after_s: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.code = code
        self.errors = errors or []
        self.instance = instance
        self.trace_id = trace_id
        self.retry_after_s = retry_after_s
        self.body = body or {}
        super().__init__(self.message())

    def message(self) -> str:
        text = self.detail or self.title or f"HTTP {self.status}"
        for err in self.errors[:5]:
            loc = ".".join(str(p) for p in err.get("loc", []) if p != "body")
            text += f"\n  {loc or '(request)'}: {err.get('msg', 'invalid')}"
        return text


class ValidationFailed(ApiError):
    """400 or 422: the request was refused as invalid."""


class AuthError(ApiError):
    """401 or 403: missing, invalid or insufficient credentials."""


class NotFoundError(ApiError):
    """404."""


class ConflictError(ApiError):
    """409 (an idempotency key reused with another body, an illegal transition)."""


class RateLimitedError(ApiError):
    """429: too many requests (or too many active jobs); `retry_after_s` says when to retry."""


class UnavailableError(ApiError):
    """5xx: the service or one of its dependencies is unavailable."""


def error_class(status: int) -> type[ApiError]:
    if status in (400, 413, 422):
        return ValidationFailed
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return UnavailableError
    return ApiError
