"""A small error hierarchy: permanent failures are recorded and acknowledged, retryable ones
are raised so the platform (Pub/Sub, Cloud Tasks, the client) tries again."""

from __future__ import annotations

from typing import Any


class CodexCloudError(Exception):
    """Base of every error the service raises on purpose."""

    retryable = False
    http_status = 500
    code = "internal"
    title = "Internal error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class PermanentError(CodexCloudError):
    """Retrying cannot help: bad input, missing object, illegal state change."""

    http_status = 400
    code = "bad-request"
    title = "Bad request"


class RetryableError(CodexCloudError):
    """A dependency is unavailable or busy; the same call may succeed later."""

    retryable = True
    http_status = 503
    code = "unavailable"
    title = "Service unavailable"

    def __init__(
        self, detail: str, *, retry_after_s: float = 1.0, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail, extra=extra)
        self.retry_after_s = retry_after_s


class InvalidInput(PermanentError):
    http_status = 422
    code = "validation-error"
    title = "Invalid request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, extra={"errors": errors or []})
        self.errors = errors or []


class PayloadTooLarge(PermanentError):
    http_status = 413
    code = "payload-too-large"
    title = "Payload too large"


class Unauthorized(PermanentError):
    http_status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(PermanentError):
    http_status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(PermanentError):
    http_status = 404
    code = "not-found"
    title = "Not found"


class Conflict(PermanentError):
    http_status = 409
    code = "conflict"
    title = "Conflict"


class IllegalTransition(Conflict):
    code = "illegal-transition"
    title = "Illegal job state change"


class DependencyUnavailable(RetryableError):
    code = "dependency-unavailable"


class RateLimited(RetryableError):
    http_status = 429
    code = "rate-limited"
    title = "Too many requests"


class CapacityExhausted(RetryableError):
    """The worker has no free slot; the dispatcher should retry later."""

    http_status = 429
    code = "no-capacity"
    title = "No free worker slot"
