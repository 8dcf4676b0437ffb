from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime

import pytest

import api.auth as auth_module
from api.auth import (
    Authenticator,
    KeyCache,
    map_gateway_scopes,
    presented_key,
    principal_from_gateway,
)
from api.problems import problem_body, response_for_error
from api.service import _check_webhook_target
from shared.apikeys import ApiKey, Scope, Tier, hash_key
from shared.errors import DependencyUnavailable, Forbidden, InvalidInput, NotFound, Unauthorized
from shared.ratelimit import RateLimiter
from shared.tokens import StreamClaims

KEY = "cck_abc_secret"


def _key(**kw: object) -> ApiKey:
    base: dict[str, object] = {
        "key_id": "abc",
        "key_hash": hash_key(KEY),
        "name": "n",
        "tenant": "acme",
        "tier": Tier.PREMIUM,
        "scopes": (Scope.READ,),
        "created_at": datetime.now(UTC),
    }
    base.update(kw)
    return ApiKey.model_validate(base)


def _auth(key: ApiKey | None, trust: bool = False) -> Authenticator:
    return Authenticator(
        lookup=lambda plaintext: key if plaintext == KEY else None,
        tier_limit=lambda tier: 100 if tier == "PREMIUM" else 10,
        limiter=RateLimiter(None),
        cache=KeyCache(0),
        trust_gateway=trust,
    )


def _userinfo(claims: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


def test_our_key_wins_over_a_gateway_api_key() -> None:
    assert presented_key({"x-api-key": KEY}) == KEY
    assert presented_key({"authorization": f"Bearer {KEY}"}) == KEY
    assert presented_key({"x-api-key": "AIzaGoogleKey", "authorization": f"Bearer {KEY}"}) == KEY
    assert presented_key({"authorization": "Basic xyz"}) is None
    # Through API Gateway with backend auth: its ID token in Authorization, the client's moved.
    through_gateway = {
        "x-api-key": "AIzaGoogleKey",
        "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.gateway.token",
        "x-forwarded-authorization": f"Bearer {KEY}",
    }
    assert presented_key(through_gateway) == KEY


def test_keys_map_to_principals_and_scopes() -> None:
    principal = _auth(_key()).identify({"x-api-key": KEY})
    assert principal.tenant == "acme"
    assert principal.rate_limit_per_minute == 100
    override = _auth(_key(rate_limit_per_minute=7)).identify({"x-api-key": KEY})
    assert override.rate_limit_per_minute == 7
    with pytest.raises(Forbidden):
        _auth(_key()).authorize(principal, Scope.WRITE)
    admin = _auth(_key(scopes=(Scope.ADMIN,))).identify({"x-api-key": KEY})
    _auth(None).authorize(admin, Scope.WRITE)  # admin implies the others
    with pytest.raises(Unauthorized):
        _auth(_key(revoked_at=datetime.now(UTC))).identify({"x-api-key": KEY})
    with pytest.raises(Unauthorized):
        _auth(_key()).identify({})


def test_gateway_identity_only_when_trusted() -> None:
    header = _userinfo({"sub": "u", "tenant": "gw", "scope": "codex.write https://x/auth/admin"})
    with pytest.raises(Unauthorized):
        _auth(None, trust=False).identify({"x-apigateway-api-userinfo": header})
    principal = _auth(None, trust=True).identify({"x-apigateway-api-userinfo": header})
    assert principal.tenant == "gw"
    assert principal.via == "gateway"
    assert principal.scopes == {"write", "admin"}
    assert map_gateway_scopes({"scopes": ["READ", "codex:write", "other"]}) == {"read", "write"}
    assert (
        principal_from_gateway(
            _userinfo({"sub": "u", "tenant": "t", "tier": "premium"}), lambda t: 5
        ).tier
        == "PREMIUM"
    )
    with pytest.raises(Forbidden):
        principal_from_gateway(_userinfo({"sub": "u"}), lambda t: 1)


def test_problem_shape_and_hidden_internals() -> None:
    body = problem_body(404, detail="job x not found", instance="/v2/jobs/x")
    assert body == {
        "type": "urn:codex-cloud:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "job x not found",
        "code": "not-found",
        "instance": "/v2/jobs/x",
    }
    response = response_for_error(
        DependencyUnavailable("job store unavailable: ServiceUnavailable", retry_after_s=2.5), "/x"
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    payload = json.loads(bytes(response.body))
    assert "ServiceUnavailable" not in json.dumps(payload)
    invalid = response_for_error(InvalidInput("bad", errors=[{"loc": ["body"], "msg": "m"}]), None)
    assert json.loads(bytes(invalid.body))["errors"] == [{"loc": ["body"], "msg": "m"}]
    secret = response_for_error(NotFound("x", extra={"internal": "y"}), None)
    assert "internal" not in json.loads(bytes(secret.body))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/h",
        "http://localhost:8080/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ],
)
def test_private_webhook_targets_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        _check_webhook_target(url, allow_private=False)
    _check_webhook_target(url, allow_private=True)


@pytest.mark.parametrize("url", ["http://[::1", "https://[evil]/x"])
@pytest.mark.parametrize("allow_private", [False, True])
def test_unparseable_webhook_targets_are_invalid_input(url: str, allow_private: bool) -> None:
    # Regression: urlsplit's ValueError escaped as a 500.
    with pytest.raises(InvalidInput) as info:
        _check_webhook_target(url, allow_private=allow_private)
    assert info.value.errors[0]["loc"] == ["body", "webhook", "url"]


def test_public_webhook_targets_are_accepted() -> None:
    _check_webhook_target("https://example.com/hook", allow_private=False)
    _check_webhook_target("https://8.8.8.8/hook", allow_private=False)


def test_a_burst_with_an_uncached_key_makes_one_lookup() -> None:
    lookups: list[str] = []
    gate = threading.Event()

    def slow_lookup(plaintext: str) -> ApiKey | None:
        lookups.append(plaintext)
        gate.wait(2)  # every request of the burst arrives while the first lookup runs
        return _key()

    auth = Authenticator(
        lookup=slow_lookup,
        tier_limit=lambda tier: 100,
        limiter=RateLimiter(None),
        cache=KeyCache(60),
        trust_gateway=False,
    )
    tenants: list[str] = []
    threads = [
        threading.Thread(target=lambda: tenants.append(auth.identify({"x-api-key": KEY}).tenant))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert tenants == ["acme"] * 8
    assert lookups == [KEY]


def test_a_flood_of_unknown_keys_does_not_flush_the_keys_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth_module, "MAX_CACHED_KEYS", 100)
    cache = KeyCache(60)
    real = _key()
    cache.put("real", real)
    for n in range(1_000):
        cache.put(f"made-up-{n}", None)  # each a miss: looked up once, cached as unknown
        if n % 10 == 0:
            assert cache.get("real") == (True, real)  # the caller's key stays cached


def _stream_auth(key: ApiKey | None) -> Authenticator:
    return Authenticator(
        lookup=lambda plaintext: None,
        lookup_id=lambda key_id: key if key is not None and key_id == key.key_id else None,
        tier_limit=lambda tier: 100 if tier == "PREMIUM" else 10,
        limiter=RateLimiter(None),
        cache=KeyCache(0),
        trust_gateway=False,
    )


def _claims(key_id: str, tenant: str = "acme", **kw: object) -> StreamClaims:
    return StreamClaims(
        session_id="s1",
        tenant=tenant,
        key_id=key_id,
        scopes=("read", "write"),
        **{"expires_at": int(time.time()) + 300, **kw},  # type: ignore[arg-type]
    )


def test_a_stream_acts_with_its_keys_current_scopes_and_limit() -> None:
    key = _key(scopes=(Scope.READ,), rate_limit_per_minute=7)
    principal = _stream_auth(key).stream_principal(_claims("abc"))
    assert principal is not None
    # The key's scopes now, not the broader ones the token was issued with.
    assert (principal.tenant, principal.scopes, principal.rate_limit_per_minute) == (
        "acme",
        frozenset({"read"}),
        7,
    )


@pytest.mark.parametrize(
    ("key", "claims"),
    [
        (None, _claims("abc")),  # deleted
        (_key(revoked_at=datetime.now(UTC)), _claims("abc")),  # revoked
        (_key(), _claims("abc", tenant="other")),  # a token naming another tenant
    ],
)
def test_a_stream_whose_key_is_gone_or_foreign_may_not_act(
    key: ApiKey | None, claims: StreamClaims
) -> None:
    assert _stream_auth(key).stream_principal(claims) is None


def test_a_gateway_stream_acts_on_its_signed_claims() -> None:
    auth = _stream_auth(None)
    limited = auth.stream_principal(_claims("gw:alice", rate_limit_per_minute=3))
    older = auth.stream_principal(_claims("gw:alice"))  # issued before tokens carried a limit
    assert limited is not None
    assert older is not None
    assert (limited.rate_limit_per_minute, limited.scopes) == (3, frozenset({"read", "write"}))
    assert older.rate_limit_per_minute == 10  # the STANDARD tier's


def test_a_gateway_stream_ends_with_the_callers_sign_in() -> None:
    auth = _stream_auth(None)
    now = int(time.time())
    signed_in = auth.stream_principal(_claims("gw:alice", identity_expires_at=now + 60))
    assert signed_in is not None
    assert signed_in.expires_at == now + 60
    # Past the caller's own token expiry the socket may not act, however long it stays open.
    assert auth.stream_principal(_claims("gw:alice", identity_expires_at=now - 1)) is None
    # A caller whose token named no expiry is held to the stream token's.
    assert auth.stream_principal(_claims("gw:alice", expires_at=now - 1)) is None
    # Keys are checked against the store instead: an old token does not end a key's socket.
    key = _key(key_id="k1")
    assert _stream_auth(key).stream_principal(_claims("k1", expires_at=now - 1)) is not None


def test_the_gateway_identity_keeps_its_expiry() -> None:
    header = _userinfo({"sub": "u", "tenant": "gw", "exp": 1_900_000_000})
    assert principal_from_gateway(header, lambda t: 1).expires_at == 1_900_000_000
    unsaid = principal_from_gateway(_userinfo({"sub": "u", "tenant": "gw"}), lambda t: 1)
    assert unsaid.expires_at is None
