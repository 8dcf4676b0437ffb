"""Who may call the worker: Google-signed OIDC ID tokens from an allow-list of service accounts.

Cloud Tasks (the dispatch identity), the long-job workflow (the workflows identity) and the
sweeper's direct cancel call send `Authorization: Bearer <ID token>` minted for
`CODEX_CLOUD_WORKER_OIDC_AUDIENCE`. The token's signature (Google's certificates, cached as long
as Google's Cache-Control allows), expiry, issuer and audience are checked, then its verified
`email` against `CODEX_CLOUD_WORKER_ALLOWED_CALLERS`. Missing or invalid token → 401 with
`WWW-Authenticate: Bearer`; valid token from anyone else → 403. The Kubernetes probes and the
Prometheus scrape stay open. Without an audience (local stack) nothing is checked; outside
local/test the worker refuses to start without one. See docs/decisions/0021.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
from google.oauth2 import id_token
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import Settings

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
# Kubernetes liveness/readiness, the load balancer's health check and Managed Prometheus.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Bounds on how long fetched certificates are reused (Google sends max-age of a few hours).
CERTS_MIN_TTL_S = 60.0
CERTS_MAX_TTL_S = 86_400.0
# A token signed by a key the cached certificates lack refetches them at most this often.
CERTS_REFRESH_AFTER_S = 300.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


class CallerRejected(Exception):
    def __init__(self, status: int, reason: str, *, challenge: str = "Bearer") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.challenge = challenge  # WWW-Authenticate of a 401


def _invalid(reason: str) -> CallerRejected:
    return CallerRejected(401, reason, challenge='Bearer error="invalid_token"')


class AuthUnavailable(Exception):
    """Google's certificates could not be fetched: the caller should retry later."""


@dataclass(frozen=True)
class _Stored(google.auth.transport.Response):
    status_code: int
    header_map: Mapping[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return self.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self.header_map

    @property
    def data(self) -> bytes:
        return self.body


class CachingRequest(google.auth.transport.Request):
    """A google-auth transport that answers GETs from memory until the response's
    Cache-Control max-age runs out, so verifying a token does not fetch Google's certificates."""

    def __init__(
        self,
        inner: Callable[..., google.auth.transport.Response] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = 10.0,
    ) -> None:
        self._inner: Callable[..., google.auth.transport.Response] = (
            inner or google.auth.transport.requests.Request()
        )
        self._clock = clock
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, float, _Stored]] = {}  # url → fetched, expires, …

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        if method != "GET":
            return self._inner(
                url, method=method, body=body, headers=headers, timeout=timeout or self._timeout_s
            )
        with self._lock:  # one fetch at a time: concurrent misses wait for it, then hit
            now = self._clock()
            entry = self._entries.get(url)
            if entry is not None and entry[1] > now:
                return entry[2]
            resp = self._inner(
                url, method="GET", headers=headers, timeout=timeout or self._timeout_s
            )
            stored = _Stored(int(resp.status), dict(resp.headers), bytes(resp.data))
            if stored.status_code == 200:
                self._entries[url] = (now, now + self._ttl(stored.header_map), stored)
            return stored

    def refresh_if_older(self, url: str, age_s: float) -> bool:
        """Drop the cached response of `url` if it was fetched more than `age_s` ago."""
        with self._lock:
            entry = self._entries.get(url)
            if entry is None or self._clock() - entry[0] < age_s:
                return False
            del self._entries[url]
            return True

    @staticmethod
    def _ttl(headers: Mapping[str, str]) -> float:
        control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
        match = _MAX_AGE.search(control)
        ttl = float(match.group(1)) if match else CERTS_MIN_TTL_S
        return min(max(ttl, CERTS_MIN_TTL_S), CERTS_MAX_TTL_S)


class WorkerAuth:
    """Verifies one Authorization header; returns the caller's email or raises."""

    def __init__(
        self,
        audience: str,
        allowed_callers: Iterable[str],
        *,
        certs_url: str = GOOGLE_CERTS_URL,
        request: CachingRequest | None = None,
        clock_skew_s: int = 10,
    ) -> None:
        self.audience = audience
        self.allowed = frozenset(e.strip().lower() for e in allowed_callers if e.strip())
        if not self.allowed:
            raise ValueError("worker auth needs at least one allowed caller")
        self.certs_url = certs_url
        self.request = request or CachingRequest()
        self.clock_skew_s = clock_skew_s

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

    def verify(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise CallerRejected(401, "missing bearer token")
        claims = self._claims(token)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise _invalid(f"token issuer {claims.get('iss')!r} is not Google")
        email = str(claims.get("email") or "").lower()
        if not email or claims.get("email_verified") not in (True, "true"):
            raise CallerRejected(403, "token carries no verified email")
        if email not in self.allowed:
            raise CallerRejected(403, f"caller {email} is not allowed")
        return email

    def _claims(self, token: str) -> Mapping[str, Any]:
        for attempt in range(2):
            try:
                claims: Mapping[str, Any] = id_token.verify_token(
                    token,
                    self.request,
                    audience=self.audience,
                    certs_url=self.certs_url,
                    clock_skew_in_seconds=self.clock_skew_s,
                )
                return claims
            except google.auth.exceptions.TransportError as exc:
                raise AuthUnavailable(f"cannot fetch token certificates: {exc}") from exc
            except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
                # Malformed, bad signature, unknown key, expired, not yet valid, wrong audience.
                # Google may have rotated to a key newer than the cached certificates.
                if attempt == 0 and self.request.refresh_if_older(
                    self.certs_url, CERTS_REFRESH_AFTER_S
                ):
                    continue
                raise _invalid(f"invalid token: {exc}") from exc
        raise AssertionError("unreachable")


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
