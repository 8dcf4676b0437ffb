from __future__ import annotations

import pytest

from shared.errors import Unauthorized
from shared.tokens import sign_stream_token, verify_stream_token

SECRET = "s" * 32


def test_round_trip_carries_session_tenant_key_and_job() -> None:
    token = sign_stream_token(
        SECRET, session_id="sess-1", tenant="acme", key_id="k1", job_id="j1", now=1000
    )
    claims = verify_stream_token(SECRET, token, session_id="sess-1", now=1100)
    assert (claims.session_id, claims.tenant, claims.key_id, claims.job_id) == (
        "sess-1",
        "acme",
        "k1",
        "j1",
    )
    assert claims.expires_at == 1300
    assert claims.rate_limit_per_minute is None  # not given: none claimed


def test_the_callers_rate_limit_and_sign_in_expiry_travel_in_the_token() -> None:
    token = sign_stream_token(
        SECRET,
        session_id="s",
        tenant="a",
        key_id="gw:x",
        rate_limit_per_minute=42,
        identity_expires_at=4600,
        now=1000,
    )
    claims = verify_stream_token(SECRET, token, session_id="s", now=1001)
    assert claims.rate_limit_per_minute == 42
    assert claims.identity_expires_at == 4600


@pytest.mark.parametrize(
    ("mutate", "session", "now"),
    [
        (lambda t: t, "sess-2", 1100),  # scoped to one session
        (lambda t: t, "sess-1", 1300),  # expired exactly at exp
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "sess-1", 1100),  # signature
        (lambda t: "e30" + t[3:], "sess-1", 1100),  # claims
        (lambda t: t.replace(".", ""), "sess-1", 1100),
        (lambda t: "", "sess-1", 1100),
        (lambda t: "%%%.%%%", "sess-1", 1100),
    ],
)
def test_invalid_tokens_are_refused_alike(mutate, session, now) -> None:
    token = sign_stream_token(SECRET, session_id="sess-1", tenant="a", key_id="k", now=1000)
    with pytest.raises(Unauthorized) as info:
        verify_stream_token(SECRET, mutate(token), session_id=session, now=now)
    assert info.value.detail == "invalid or expired connection token"


def test_another_signing_key_is_refused() -> None:
    token = sign_stream_token("other" * 8, session_id="s", tenant="a", key_id="k")
    with pytest.raises(Unauthorized):
        verify_stream_token(SECRET, token, session_id="s")
