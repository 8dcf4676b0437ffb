"""Google-signed OIDC ID tokens: minting one for this process's own calls, verifying callers'.

Minting (decision 0021): Cloud Tasks and Workflows mint their tokens themselves; a direct call
(the sweeper asking a worker to stop a timed-out job) fetches one for its own service account
from the metadata server (or GOOGLE_APPLICATION_CREDENTIALS).

Verifying (the worker's callers; API Gateway's calls to the API, decision 0206): the token's
signature (Google's certificates, cached as long as Google's Cache-Control allows), expiry,
issuer and audience are checked, then its verified `email` against an allow-list.
"""

from __future__ import annotations

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


def id_token_headers(audience: str | None) -> dict[str, str]:
    """`Authorization: Bearer <ID token for audience>`, or no header when no audience is
    configured (the local stack, whose worker checks none). Raises google.auth errors when no
    token can be fetched."""
    if not audience:
        return {}
    request = google.auth.transport.requests.Request()
    token = id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]
    return {"Authorization": f"Bearer {token}"}


GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
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


class IdTokenVerifier:
    """Verifies one `Authorization: Bearer` header holding a Google-signed ID token for
    `audience` from one of `allowed_callers`; returns the caller's email or raises."""

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
            raise ValueError("ID token checks need at least one allowed caller")
        self.certs_url = certs_url
        self.request = request or CachingRequest()
        self.clock_skew_s = clock_skew_s

    def verify(self, authorization: str | None) -> str:
        """The verified caller's email; raises CallerRejected or AuthUnavailable."""
        return str(self.verify_claims(authorization)["email"]).lower()

    def verify_claims(self, authorization: str | None) -> Mapping[str, Any]:
        """The verified token's claims (an allowed caller's); raises as `verify`."""
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
        return claims

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
                # google-auth quotes a malformed token whole: keep it (perhaps a client's
                # API key sent to the wrong place) out of the reason, which gets logged.
                raise _invalid(f"invalid token: {str(exc).replace(token, '<token>')}") from exc
        raise AssertionError("unreachable")
