"""The API trusts API Gateway's userinfo header only on requests that carry the gateway's own
ID token (decision 0206). Tokens are minted with a local RSA key whose certificate a loopback
server publishes in place of Google's certs URL."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from starlette.datastructures import Headers

from api.auth import Authenticator, GatewayProof, KeyCache
from api.deps import _gateway_proof
from api.settings import ApiSettings
from shared.errors import DependencyUnavailable, Forbidden, Unauthorized
from shared.oidc import CallerRejected, IdTokenVerifier
from shared.ratelimit import RateLimiter
from tests import idtokens
from tests.httpfakes import FakeServer, fake_server
from tests.idtokens import keypair

AUDIENCE = "https://codex-api-abc-uc.a.run.app"
GATEWAY = "codex-api-gateway@proj.iam.gserviceaccount.com"
USERINFO = base64.urlsafe_b64encode(
    json.dumps({"sub": "u1", "tenant": "gw", "scope": "codex.write"}).encode()
).decode()
# The client's own JWT, which the gateway verified and forwards; the userinfo header is its
# payload (here with padding stripped, as in a JWT).
CLIENT_JWT = f"eyJhbGciOiJSUzI1NiJ9.{USERINFO.rstrip('=')}.c2lnbmF0dXJl"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, str]:
    return keypair()


@pytest.fixture(scope="module")
def certs(signing_key: tuple[bytes, str]) -> Iterator[FakeServer]:
    with idtokens.published_certs(signing_key) as server:
        yield server


def _proof(certs_url: str, clock: Clock | None = None) -> GatewayProof:
    verifier = IdTokenVerifier(AUDIENCE, [GATEWAY], certs_url=certs_url)
    if clock is None:
        return GatewayProof(verifier)
    return GatewayProof(verifier, clock=clock)


def _auth(proof: GatewayProof | None) -> Authenticator:
    return Authenticator(
        lookup=lambda plaintext: None,
        tier_limit=lambda tier: 10,
        limiter=RateLimiter(None),
        cache=KeyCache(0),
        trust_gateway=True,
        gateway_proof=proof,
    )


def _through_gateway(token: str, client_jwt: str | None = CLIENT_JWT) -> dict[str, str]:
    headers = {"x-apigateway-api-userinfo": USERINFO, "authorization": f"Bearer {token}"}
    if client_jwt is not None:
        headers["x-forwarded-authorization"] = f"Bearer {client_jwt}"
    return headers


def _mint(key: tuple[bytes, str], **claims: object) -> str:
    return idtokens.mint(key, **{"audience": AUDIENCE, "email": GATEWAY, **claims})  # type: ignore[arg-type]


def test_a_request_with_the_gateways_token_acts_as_the_forwarded_identity(
    certs: FakeServer, signing_key: tuple[bytes, str]
) -> None:
    auth = _auth(_proof(f"{certs.url}/certs"))
    headers = _through_gateway(_mint(signing_key))
    # Not verified yet: the event loop must hop to a thread rather than trust the header.
    assert auth.identify_cached(headers) is None
    principal = auth.identify(headers)
    assert (principal.tenant, principal.via) == ("gw", "gateway")
    assert principal.scopes == {"write"}
    # Verified once, the same token is accepted without a thread hop or another fetch.
    fetches = len(certs.requests)
    again = auth.identify_cached(headers)
    assert again is not None
    assert again.tenant == "gw"
    assert len(certs.requests) == fetches


def test_a_forged_userinfo_header_is_refused(
    certs: FakeServer, signing_key: tuple[bytes, str]
) -> None:
    auth = _auth(_proof(f"{certs.url}/certs"))
    with pytest.raises(Unauthorized):
        auth.identify({"x-apigateway-api-userinfo": USERINFO})  # no token at all
    with pytest.raises(Unauthorized):
        auth.identify(_through_gateway(_mint(signing_key, audience="https://elsewhere")))
    with pytest.raises(Unauthorized):
        auth.identify(_through_gateway(_mint(keypair())))  # signed by a key Google never published
    with pytest.raises(Unauthorized):
        auth.identify(_through_gateway(_mint(signing_key, issued_s_ago=7200)))  # expired
    with pytest.raises(Forbidden):
        # A genuine Google token for the API, but from some other service account.
        auth.identify(
            _through_gateway(_mint(signing_key, email="intruder@x.iam.gserviceaccount.com"))
        )
    with pytest.raises(Forbidden):
        auth.identify(_through_gateway(_mint(signing_key, verified=False)))


def test_the_forwarded_identity_must_be_the_callers_verified_token(
    certs: FakeServer, signing_key: tuple[bytes, str]
) -> None:
    auth = _auth(_proof(f"{certs.url}/certs"))
    token = _mint(signing_key)
    # A genuine gateway call made on an API key alone: a userinfo header riding along names
    # nobody the gateway checked.
    with pytest.raises(Unauthorized):
        auth.identify(_through_gateway(token, client_jwt=None))
    other = base64.urlsafe_b64encode(json.dumps({"sub": "x", "tenant": "victim"}).encode())
    with pytest.raises(Unauthorized):
        auth.identify(_through_gateway(token, client_jwt=f"h.{other.decode()}.s"))
    with pytest.raises(Unauthorized):
        auth.identify(_through_gateway(token, client_jwt="cck_abc_secret"))
    # Two userinfo headers: which one did the gateway set? Neither is taken.
    doubled = Headers(
        raw=[
            (b"x-apigateway-api-userinfo", USERINFO.encode()),
            (b"x-apigateway-api-userinfo", other),
            (b"authorization", f"Bearer {token}".encode()),
            (b"x-forwarded-authorization", f"Bearer {CLIENT_JWT}".encode()),
        ]
    )
    with pytest.raises(Unauthorized):
        auth.identify(doubled)


def test_a_refused_tokens_reason_never_quotes_it(certs: FakeServer) -> None:
    verifier = IdTokenVerifier(AUDIENCE, [GATEWAY], certs_url=f"{certs.url}/certs")
    with pytest.raises(CallerRejected) as refused:
        verifier.verify_claims("Bearer cck_abc_a-client-key-sent-to-the-wrong-place")
    assert "a-client-key" not in refused.value.reason


def test_unreachable_certificates_are_a_retryable_dependency_error(
    signing_key: tuple[bytes, str],
) -> None:
    with fake_server(lambda req: (500, {})) as broken:
        auth = _auth(_proof(f"{broken.url}/certs"))
        with pytest.raises(DependencyUnavailable) as raised:
            auth.identify(_through_gateway(_mint(signing_key)))
    assert raised.value.retry_after_s


def test_a_verified_token_is_checked_again_once_it_expires(
    certs: FakeServer, signing_key: tuple[bytes, str]
) -> None:
    clock = Clock(1_000.0)
    proof = _proof(f"{certs.url}/certs", clock)
    header = f"Bearer {_mint(signing_key)}"
    proof.verify(header)
    assert proof.verified_before(header)
    clock.now += 299
    assert proof.verified_before(header)
    clock.now += 2  # past the 300 s the proof is remembered
    assert not proof.verified_before(header)
    assert not proof.verified_before(None)


def test_without_a_proof_the_header_is_taken_on_trust() -> None:
    # Local and test settings only: the settings refuse this anywhere else.
    principal = _auth(None).identify_cached({"x-apigateway-api-userinfo": USERINFO})
    assert principal is not None
    assert principal.tenant == "gw"


def _settings(**kw: object) -> ApiSettings:
    base = {"environment": "prod", "project_id": "proj", "token_signing_key": "k" * 40}
    return ApiSettings.model_validate({**base, **kw})


@pytest.mark.usefixtures("without_emulators")
def test_a_deployment_cannot_trust_the_header_unchecked() -> None:
    assert _gateway_proof(_settings()) is None  # not trusted: nothing to check
    with pytest.raises(ValidationError, match="needs CODEX_CLOUD_GATEWAY_OIDC_AUDIENCE"):
        _settings(trust_gateway_userinfo=True)
    with pytest.raises(ValidationError, match="GATEWAY_ALLOWED_CALLERS must name"):
        _settings(trust_gateway_userinfo=True, gateway_oidc_audience=AUDIENCE)
    checked = _settings(
        trust_gateway_userinfo=True,
        gateway_oidc_audience=AUDIENCE,
        gateway_allowed_callers=f" {GATEWAY.upper()} , other@proj.iam.gserviceaccount.com",
    )
    assert checked.gateway_callers == {GATEWAY, "other@proj.iam.gserviceaccount.com"}
    assert isinstance(_gateway_proof(checked), GatewayProof)
    local = ApiSettings.model_validate({"environment": "local", "trust_gateway_userinfo": True})
    assert _gateway_proof(local) is None
