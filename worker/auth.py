"""Who may call the worker: Google-signed OIDC ID tokens from an allow-list of service accounts.

Cloud Tasks (the dispatch identity), the long-job workflow (the workflows identity) and the
sweeper's direct cancel call send `Authorization: Bearer <ID token>` minted for
`CODEX_CLOUD_WORKER_OIDC_AUDIENCE`, verified by `shared.oidc.IdTokenVerifier` against
`CODEX_CLOUD_WORKER_ALLOWED_CALLERS`. Missing or invalid token → 401 with
`WWW-Authenticate: Bearer`; valid token from anyone else → 403. The Kubernetes probes and the
Prometheus scrape stay open. Without an audience (local stack) nothing is checked; outside
local/test the worker refuses to start without one. See docs/decisions/0021.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.oidc import AuthUnavailable, CallerRejected, IdTokenVerifier
from shared.settings import Settings

log = logging.getLogger(__name__)

# Kubernetes liveness/readiness, the load balancer's health check and Managed Prometheus.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class WorkerAuth(IdTokenVerifier):
    """The worker's callers: an ID token for `CODEX_CLOUD_WORKER_OIDC_AUDIENCE` from one of
    `CODEX_CLOUD_WORKER_ALLOWED_CALLERS`."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerAuth | None:
        """The verifier the settings ask for; None on the local stack (no audience). Raises
        outside local/test without an audience, so production cannot run open."""
        problem = settings.worker_auth_problem()
        if problem:
            raise RuntimeError(problem)
        if not settings.worker_oidc_audience:
            return None
        return cls(settings.worker_oidc_audience, settings.worker_callers)


def _problem(status: int, title: str, detail: str, headers: dict[str, str]) -> JSONResponse:
    code = {401: "unauthorized", 403: "forbidden"}.get(status, "unavailable")
    return JSONResponse(
        {"type": f"urn:codex-cloud:{code}", "title": title, "status": status, "detail": detail},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


class WorkerAuthMiddleware:
    """Refuses every request outside `open_paths` that `auth` does not accept."""

    def __init__(
        self, app: ASGIApp, *, auth: WorkerAuth, open_paths: Iterable[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self.auth = auth
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        try:
            # Off the event loop: a certificate refetch is a blocking HTTPS call.
            caller = await asyncio.to_thread(self.auth.verify, authorization)
        except CallerRejected as exc:
            log.warning(
                "worker call refused",
                extra={
                    "fields": {"path": scope["path"], "status": exc.status, "reason": exc.reason}
                },
            )
            if exc.status == 401:
                headers = {"WWW-Authenticate": exc.challenge}
                response = _problem(401, "Unauthorized", exc.reason, headers)
            else:
                response = _problem(403, "Forbidden", exc.reason, {})
            await response(scope, receive, send)
            return
        except AuthUnavailable as exc:
            log.error("worker call not verified", extra={"fields": {"error": str(exc)}})
            response = _problem(503, "Service unavailable", str(exc), {"Retry-After": "5"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)
