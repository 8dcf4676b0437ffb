"""Rate limits per key tier, the per-tenant active-jobs cap, and serving through a Redis outage.

The API stack in api_support runs with STANDARD=20/min, PREMIUM=40/min and 4 active jobs.
"""

from __future__ import annotations

import time

import httpx

from tests.e2e.api_support import (
    MAX_ACTIVE_JOBS,
    PREMIUM_LIMIT,
    STANDARD_LIMIT,
    ApiEnv,
    api,
    api_stack,
)

__all__ = ["api", "api_stack"]


def _exhaust(c: httpx.Client, limit: int) -> httpx.Response:
    started = time.monotonic()
    for i in range(limit):
        r = c.get("/v2/jobs")
        assert r.status_code == 200, (i, r.text)
        assert r.headers["RateLimit-Limit"] == str(limit)
        # The bucket refills continuously (limit per minute): on a slow machine a request or
        # two may earn a token back, never more than the elapsed time allows.
        refilled = int((time.monotonic() - started) * limit / 60) + 1
        expected = limit - i - 1
        assert expected <= int(r.headers["RateLimit-Remaining"]) <= expected + refilled
    for _ in range(limit):  # spend what refilled; the next request must then be refused
        r = c.get("/v2/jobs")
        if r.status_code == 429:
            return r
    raise AssertionError("the limit was never enforced")


def _assert_limited(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "rate-limited"
    assert r.headers["RateLimit-Limit"] == str(limit)
    assert r.headers["RateLimit-Remaining"] == "0"
    # One token refills in 60/limit seconds.
    assert 1 <= int(r.headers["Retry-After"]) <= 60 // limit + 1
    assert int(r.headers["RateLimit-Reset"]) >= int(r.headers["Retry-After"])


def test_standard_tier_boundary(api: ApiEnv) -> None:
    key, _ = api.key(tier="STANDARD")
    other, _ = api.key(tier="STANDARD")
    with api.client(key) as c:
        _assert_limited(_exhaust(c, STANDARD_LIMIT), STANDARD_LIMIT)
        # Submissions count against the same bucket.
        assert c.post("/v2/exec", json={"prompt": "p"}).status_code == 429
    with api.client(other) as c:
        assert c.get("/v2/jobs").status_code == 200  # buckets are per key


def test_premium_tier_boundary(api: ApiEnv) -> None:
    key, _ = api.key(tier="PREMIUM")
    with api.client(key) as c:
        _assert_limited(_exhaust(c, PREMIUM_LIMIT), PREMIUM_LIMIT)


def test_per_key_override(api: ApiEnv) -> None:
    key, _ = api.key(tier="PREMIUM", rate_limit=3)
    with api.client(key) as c:
        _assert_limited(_exhaust(c, 3), 3)


def test_unauthenticated_requests_are_not_counted_against_a_key(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client() as anon:
        for _ in range(STANDARD_LIMIT + 5):
            assert anon.get("/v2/jobs").status_code == 401
    with api.client(key) as c:
        assert c.get("/v2/jobs").headers["RateLimit-Remaining"] == str(STANDARD_LIMIT - 1)


def test_active_jobs_cap_per_tenant(api: ApiEnv) -> None:
    key, tenant = api.key(tier="PREMIUM")
    colleague, _ = api.key(tenant, tier="PREMIUM")
    with api.client(key) as c, api.client(colleague) as c2:
        ids = [
            c.post("/v2/exec", json={"prompt": f"p{i}"}).json()["job_id"]
            for i in range(MAX_ACTIVE_JOBS)
        ]
        over = c2.post("/v2/exec", json={"prompt": "one more"})
        assert over.status_code == 429
        assert over.json()["code"] == "too-many-active-jobs"
        assert over.json()["active_jobs"] == MAX_ACTIVE_JOBS
        assert int(over.headers["Retry-After"]) >= 1
        # Replays of an existing idempotent job are not new work: not capped.
        c.post(f"/v2/jobs/{ids[0]}:cancel")
        keyed = c.post("/v2/exec", json={"prompt": "k"}, headers={"Idempotency-Key": "k1"})
        assert keyed.status_code == 202
        again = c.post("/v2/exec", json={"prompt": "k"}, headers={"Idempotency-Key": "k1"})
        assert again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert c.post("/v2/exec", json={"prompt": "x"}).status_code == 429
    other, _ = api.key(tier="PREMIUM")
    with api.client(other) as c:
        assert c.post("/v2/exec", json={"prompt": "another tenant"}).status_code == 202


def test_redis_outage_falls_back_to_in_process_limits(api: ApiEnv) -> None:
    key, _ = api.key()
    redis_proc = api.stack.processes["redis"]
    redis_proc.stop()
    try:
        with api.client(key) as c:
            ready = c.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"firestore": "ok", "redis": "unavailable"}
            assert ready.headers["Retry-After"]
            r = c.post("/v2/exec", json={"prompt": "still served"})
            assert r.status_code == 202, r.text
            assert c.get(f"/v2/jobs/{r.json()['job_id']}").status_code == 200
            # The fallback still enforces the key's limit (per instance).
            limited = None
            for _ in range(STANDARD_LIMIT + 1):
                limited = c.get("/v2/jobs")
                assert limited.status_code in (200, 429), limited.text
                if limited.status_code == 429:
                    break
            assert limited is not None
            assert limited.status_code == 429
    finally:
        redis_proc.start()
        redis_proc.wait_port("127.0.0.1", api.stack.ports["redis"], timeout_s=30)
    with api.client() as c:
        assert c.get("/ready").status_code == 200
