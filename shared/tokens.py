"""Short-lived connection tokens for the streaming endpoints.

A token binds one session to one tenant for a few minutes, so a WebSocket client (browsers cannot
send an API key header on the upgrade request) can connect with a URL parameter that is useless
for anything else and soon expires. Format: `base64url(claims).base64url(hmac_sha256(claims))`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from shared.errors import Unauthorized

TOKEN_VERSION = 1
DEFAULT_TTL_S = 300


@dataclass(frozen=True)
class StreamClaims:
    session_id: str
    tenant: str
    key_id: str
    scopes: tuple[str, ...]
    expires_at: int
    # The job a stream-mode submission created, streamed as soon as the client connects.
    job_id: str | None = None
    # The caller's requests per minute when the token was issued: the limit a WebSocket's
    # prompts are held to when the identity has no stored key to look up (a gateway caller).
    rate_limit_per_minute: int | None = None
    # When the identity the token was issued to stops being valid (a gateway caller's own
    # token expiry): an open socket may not act for it after that.
    identity_expires_at: int | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def sign_stream_token(
    secret: str,
    *,
    session_id: str,
    tenant: str,
    key_id: str,
    scopes: tuple[str, ...] = ("read", "write"),
    ttl_s: int = DEFAULT_TTL_S,
    job_id: str | None = None,
    rate_limit_per_minute: int | None = None,
    identity_expires_at: int | None = None,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "v": TOKEN_VERSION,
        "sid": session_id,
        "ten": tenant,
        "kid": key_id,
        "scp": list(scopes),
        "exp": issued + ttl_s,
    }
    if job_id:
        claims["jid"] = job_id
    if rate_limit_per_minute is not None:
        claims["rpm"] = rate_limit_per_minute
    if identity_expires_at is not None:
        claims["iex"] = identity_expires_at
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_stream_token(
    secret: str, token: str, *, session_id: str, now: float | None = None
) -> StreamClaims:
    """The claims of a valid, unexpired token for `session_id`; Unauthorized otherwise.

    Every failure gives the same message so a caller learns nothing about which check failed.
    """
    invalid = Unauthorized("invalid or expired connection token")
    body, sep, signature = token.partition(".")
    if not sep or not body or not signature:
        raise invalid
    try:
        payload = _unb64(body)
        given = _unb64(signature)
    except ValueError:
        raise invalid from None
    # Constant-time: the comparison must not reveal how many leading bytes were right.
    if not hmac.compare_digest(given, _mac(secret, payload)):
        raise invalid
    try:
        claims = json.loads(payload)
        parsed = StreamClaims(
            session_id=str(claims["sid"]),
            tenant=str(claims["ten"]),
            key_id=str(claims["kid"]),
            scopes=tuple(str(s) for s in claims.get("scp", [])),
            expires_at=int(claims["exp"]),
            job_id=str(claims["jid"]) if claims.get("jid") else None,
            rate_limit_per_minute=int(claims["rpm"]) if "rpm" in claims else None,
            identity_expires_at=int(claims["iex"]) if "iex" in claims else None,
        )
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    current = now if now is not None else time.time()
    if claims.get("v") != TOKEN_VERSION or parsed.expires_at <= current:
        raise invalid
    if not hmac.compare_digest(parsed.session_id.encode(), session_id.encode()):
        raise invalid
    return parsed
