"""Who is calling: API keys (X-API-KEY or `Authorization: Bearer`), or the identity API Gateway
forwards when the deployment trusts it (on requests that prove they came through the gateway
with its ID token); then scope checks and the per-key rate limit."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from api.settings import ApiSettings
from shared.apikeys import KEY_PREFIX, ApiKey, Scope, find_key, find_key_by_id, hash_key
from shared.errors import DependencyUnavailable, Forbidden, RateLimited, Unauthorized
from shared.oidc import AuthUnavailable, CallerRejected, IdTokenVerifier
from shared.ratelimit import Decision, RateLimiter
from shared.tokens import StreamClaims, sign_stream_token

log = logging.getLogger(__name__)

GATEWAY_USERINFO_HEADER = "x-apigateway-api-userinfo"
# Entries of the verified-key cache (digest → key or None for an unknown key).
MAX_CACHED_KEYS = 50_000
# The key id of a principal the gateway identified (no stored key behind it).
GATEWAY_KEY_PREFIX = "gw:"
_SCOPE_SPLIT = re.compile(r"[/.:]")


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    tier: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    via: str = "api_key"
    # When the identity stops being valid, if it says (a gateway caller's token expiry).
    expires_at: int | None = None

    def has(self, scope: Scope | str) -> bool:
        return str(scope) in self.scopes


class KeyRateLimited(RateLimited):
    def __init__(self, decision: Decision) -> None:
        super().__init__(
            f"rate limit of {decision.limit} requests per minute exceeded",
            retry_after_s=max(1, decision.retry_after_s),
            extra={"limit": decision.limit},
        )
        self.headers = decision.headers()


class MissingCredentials(Unauthorized):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": 'ApiKey header="X-API-KEY"'}


class KeyCache:
    """Recently verified keys, so a burst of requests costs one Firestore read per key."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, ApiKey | None]:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] < self._clock():
                return False, None
            # Least recently used goes first when the cache is full (see `put`).
            del self._entries[digest]
            self._entries[digest] = entry
            return True, entry[1]

    def put(self, digest: str, key: ApiKey | None) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            now = self._clock()
            if len(self._entries) >= MAX_CACHED_KEYS:
                # Drop what expired, then the least recently used: a flood of made-up keys must
                # not flush the keys real callers keep using (clearing everything did).
                self._entries = {d: e for d, e in self._entries.items() if e[0] >= now}
                while len(self._entries) >= MAX_CACHED_KEYS:
                    del self._entries[next(iter(self._entries))]
            self._entries.pop(digest, None)  # re-inserted last: the newest
            self._entries[digest] = (now + self._ttl, key)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key: X-API-KEY, or `Authorization: Bearer`.

    Behind API Gateway X-API-KEY may hold the Google Cloud API key the gateway checks for its
    quota; the service's own key then travels as the bearer token, so a value that looks like
    one of our keys wins. The gateway authenticates to the service with its own ID token in
    `Authorization` and passes the client's header on as `X-Forwarded-Authorization`, so a
    bearer key is looked for there too (a key is checked the same whichever header holds it).
    """
    candidates = []
    key = headers.get("x-api-key", "").strip()
    if key:
        candidates.append(key)
    for header in ("authorization", "x-forwarded-authorization"):
        scheme, _, value = headers.get(header, "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            candidates.append(value.strip())
    for candidate in candidates:
        if candidate.startswith(KEY_PREFIX):
            return candidate
    return candidates[0] if candidates else None


def principal_from_key(key: ApiKey, tier_limit: Callable[[str], int]) -> Principal:
    return Principal(
        key_id=key.key_id,
        tenant=key.tenant,
        tier=key.tier.value,
        scopes=frozenset(s.value for s in key.scopes),
        rate_limit_per_minute=key.rate_limit_per_minute or tier_limit(key.tier.value),
    )


def map_gateway_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """OAuth scopes such as `codex.read`, `https://…/auth/codex:write` or `admin` → our scopes."""
    raw: list[str] = []
    scope = claims.get("scope")
    if isinstance(scope, str):
        raw.extend(scope.split())
    scopes = claims.get("scopes")
    if isinstance(scopes, list):
        raw.extend(str(s) for s in scopes)
    known = {s.value for s in Scope}
    mapped = {_SCOPE_SPLIT.split(item)[-1].lower() for item in raw}
    return frozenset(mapped & known)


def _b64_json(text: str) -> Any:
    """The JSON value of base64url `text` (padded or not); ValueError when it is none."""
    text = text.strip()
    try:
        return json.loads(base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode()))
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None


def principal_from_gateway(header: str, tier_limit: Callable[[str], int]) -> Principal:
    """Decode API Gateway's base64url JSON of the verified token's claims."""
    try:
        claims = _b64_json(header)
    except ValueError:
        raise Unauthorized("unreadable gateway identity") from None
    if not isinstance(claims, dict):
        raise Unauthorized("unreadable gateway identity")
    tenant = claims.get("tenant")
    subject = claims.get("sub") or claims.get("email")
    if not isinstance(tenant, str) or not tenant or not subject:
        raise Forbidden("the gateway identity carries no tenant")
    tier = str(claims.get("tier") or "STANDARD").upper()
    tier = tier if tier in ("STANDARD", "PREMIUM") else "STANDARD"
    expiry = claims.get("exp")
    return Principal(
        key_id=f"{GATEWAY_KEY_PREFIX}{subject}",
        tenant=tenant,
        tier=tier,
        scopes=map_gateway_scopes(claims),
        rate_limit_per_minute=tier_limit(tier),
        via="gateway",
        expires_at=int(expiry) if isinstance(expiry, int | float) else None,
    )


def forwarded_token_matches(userinfo: str, forwarded_authorization: str | None) -> bool:
    """Whether `userinfo` is the payload of the client's own JWT, which the gateway verified
    and passed on in X-Forwarded-Authorization. A userinfo header on a call the gateway let
    through on an API key alone (no JWT) names nobody the gateway checked."""
    scheme, _, token = (forwarded_authorization or "").strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return False
    try:
        return bool(_b64_json(parts[1]) == _b64_json(userinfo))
    except ValueError:
        return False


def issue_stream_token(
    settings: ApiSettings, principal: Principal, *, session_id: str, job_id: str | None
) -> str:
    """A connection token acting for `principal` on `session_id` (a WebSocket session, or a
    console events namespace), with what a socket needs to act for it later: its scopes, its
    limit and, for a gateway caller, when its own token expires."""
    return sign_stream_token(
        settings.token_signing_key.get_secret_value(),
        session_id=session_id,
        tenant=principal.tenant,
        key_id=principal.key_id,
        scopes=tuple(sorted(principal.scopes)),
        ttl_s=settings.stream_token_ttl_s,
        job_id=job_id,
        rate_limit_per_minute=principal.rate_limit_per_minute,
        identity_expires_at=principal.expires_at,
    )


class GatewayProof:
    """Checks that a request carrying the gateway's userinfo header came through API Gateway:
    with backend authentication the gateway sends its own Google-signed ID token in
    `Authorization` (the client's moves to `X-Forwarded-Authorization`). A verified token is
    remembered until it expires (at most `max_age_s`): the gateway reuses one for many calls,
    and the event loop can then accept the request without a thread hop."""

    def __init__(
        self,
        verifier: IdTokenVerifier,
        *,
        clock: Callable[[], float] = time.time,
        max_age_s: float = 300.0,
        max_entries: int = 1_024,
    ) -> None:
        self._verifier = verifier
        self._clock = clock
        self._max_age_s = max_age_s
        self._max_entries = max_entries
        self._verified: dict[str, float] = {}  # authorization header → valid until
        self._guard = threading.Lock()

    def verified_before(self, authorization: str | None) -> bool:
        """Whether this header was verified and is still valid (never blocks)."""
        if not authorization:
            return False
        with self._guard:
            until = self._verified.get(authorization)
        return until is not None and until > self._clock()

    def verify(self, authorization: str | None) -> None:
        """Raise unless `authorization` holds the gateway's valid ID token. May fetch Google's
        certificates (call from a worker thread)."""
        if self.verified_before(authorization):
            return
        try:
            claims = self._verifier.verify_claims(authorization)
        except CallerRejected as exc:
            # The reason stays in the log: the caller learns only that it was refused.
            log.warning("gateway identity refused: %s", exc.reason)
            if exc.status == 403:
                raise Forbidden("the request did not come from the API gateway") from None
            raise Unauthorized("the request did not come through the API gateway") from None
        except AuthUnavailable as exc:
            log.error("gateway identity not verified: %s", exc)
            raise DependencyUnavailable(
                "cannot verify the API gateway's identity now", retry_after_s=5.0
            ) from None
        assert authorization is not None  # verify_claims refused a missing header
        now = self._clock()
        until = min(float(claims.get("exp", now)), now + self._max_age_s)
        with self._guard:
            if len(self._verified) >= self._max_entries:
                self._verified = {k: v for k, v in self._verified.items() if v > now}
                if len(self._verified) >= self._max_entries:
                    self._verified.clear()
            self._verified[authorization] = until


class Authenticator:
    def __init__(
        self,
        *,
        lookup: Callable[[str], ApiKey | None],
        tier_limit: Callable[[str], int],
        limiter: RateLimiter,
        cache: KeyCache,
        trust_gateway: bool,
        lookup_id: Callable[[str], ApiKey | None] | None = None,
        gateway_proof: GatewayProof | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lookup = lookup
        self._lookup_id = lookup_id
        self._tier_limit = tier_limit
        self._limiter = limiter
        self._cache = cache
        self._trust_gateway = trust_gateway
        # None: the userinfo header is taken on trust (local and test settings only).
        self._gateway_proof = gateway_proof
        self._clock = clock
        # Striped by key digest: a burst of requests with a key not yet cached (a new key, a
        # restarted instance) makes one lookup, not one per request.
        self._lookup_locks = [threading.Lock() for _ in range(64)]

    def identify(self, headers: Mapping[str, str]) -> Principal:
        """The caller; may block on a key lookup or a gateway token check (call from a worker
        thread)."""
        forwarded = self._gateway_userinfo(headers)
        if forwarded is not None:
            if self._gateway_proof is not None:
                self._gateway_proof.verify(headers.get("authorization"))
            return principal_from_gateway(forwarded, self._tier_limit)
        principal = self.identify_cached(headers)
        if principal is not None:
            return principal
        plaintext = presented_key(headers)
        assert plaintext is not None  # identify_cached raised otherwise
        digest = hash_key(plaintext)
        with self._lookup_locks[hash(digest) % len(self._lookup_locks)]:
            hit, key = self._cache.get(digest)
            if not hit:
                key = self._lookup(plaintext)
                self._cache.put(digest, key)
        return self._principal(key)

    def identify_cached(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller when no lookup is needed (gateway identity or a cached key), else None.

        Never blocks, so an event loop can call it and hop to a thread only on a cache miss.
        """
        forwarded = self._gateway_userinfo(headers)
        if forwarded is not None:
            proof = self._gateway_proof
            if proof is not None and not proof.verified_before(headers.get("authorization")):
                return None  # `identify` checks the gateway's token
            return principal_from_gateway(forwarded, self._tier_limit)
        plaintext = presented_key(headers)
        if not plaintext:
            raise MissingCredentials("an API key is required (X-API-KEY header)")
        hit, key = self._cache.get(hash_key(plaintext))
        return self._principal(key) if hit else None

    def _gateway_userinfo(self, headers: Mapping[str, str]) -> str | None:
        if not self._trust_gateway:
            return None
        getlist = getattr(headers, "getlist", None)
        if getlist is not None and len(getlist(GATEWAY_USERINFO_HEADER)) > 1:
            # Which one did the gateway set? Neither is taken.
            raise Unauthorized("conflicting gateway identity headers")
        userinfo = headers.get(GATEWAY_USERINFO_HEADER) or None
        if (
            userinfo is not None
            and self._gateway_proof is not None
            and not forwarded_token_matches(userinfo, headers.get("x-forwarded-authorization"))
        ):
            raise Unauthorized("the gateway identity does not match the caller's token")
        return userinfo

    def stream_principal(self, claims: StreamClaims) -> Principal | None:
        """Who may act on a WebSocket opened with `claims` now, or None once its key is gone.

        A socket outlives its opening check: its prompts must stop once the key is revoked
        (within the key cache's lifetime, as for every other request) and follow the key's
        current scopes and limit. A gateway identity has no stored key: the token's own claims
        (signed when it was issued) stand for it until the caller's own token expires (or,
        when it did not say, the stream token does). May block on a lookup (call from a
        thread).
        """
        if self._lookup_id is None or claims.key_id.startswith(GATEWAY_KEY_PREFIX):
            gateway = claims.key_id.startswith(GATEWAY_KEY_PREFIX)
            valid_until = claims.identity_expires_at or claims.expires_at
            if gateway and self._clock() >= valid_until:
                return None
            return Principal(
                key_id=claims.key_id,
                tenant=claims.tenant,
                tier="STANDARD",
                scopes=frozenset(claims.scopes),
                rate_limit_per_minute=claims.rate_limit_per_minute or self._tier_limit("STANDARD"),
                via="gateway",
                expires_at=valid_until if gateway else None,
            )
        entry = f"id:{claims.key_id}"  # its own namespace in the digest-keyed cache
        hit, key = self._cache.get(entry)
        if not hit:
            key = self._lookup_id(claims.key_id)
            self._cache.put(entry, key)
        if key is None or not key.active or key.tenant != claims.tenant:
            return None
        return principal_from_key(key, self._tier_limit)

    def _principal(self, key: ApiKey | None) -> Principal:
        if key is None or not key.active:
            raise MissingCredentials("the API key is not valid")
        return principal_from_key(key, self._tier_limit)

    def authorize(self, principal: Principal, scope: Scope) -> None:
        # admin implies the other scopes; write does not imply read (a submit-only key is valid).
        if not (principal.has(scope) or principal.has(Scope.ADMIN)):
            raise Forbidden(f"this key lacks the {scope.value} scope")

    async def throttle(self, principal: Principal) -> Decision:
        decision = await self._limiter.hit(
            f"key:{principal.key_id}", limit=principal.rate_limit_per_minute, window_s=60.0
        )
        if not decision.allowed:
            raise KeyRateLimited(decision)
        return decision


def lookup_with(client: Any, settings: Any) -> Callable[[str], ApiKey | None]:
    return lambda plaintext: find_key(client, settings, plaintext)


def lookup_id_with(client: Any, settings: Any) -> Callable[[str], ApiKey | None]:
    return lambda key_id: find_key_by_id(client, settings, key_id)
