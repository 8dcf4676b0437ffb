from __future__ import annotations

import asyncio
from typing import Any

from shared.ratelimit import Decision, LocalBuckets, RateLimiter, decide, take


def test_bucket_allows_a_burst_of_limit_then_refuses() -> None:
    bucket = None
    results = []
    for _ in range(11):
        bucket, allowed = take(bucket, limit=10, window_s=60, now=0.0)
        results.append(allowed)
    assert results == [True] * 10 + [False]


def test_bucket_refills_one_token_per_window_over_limit() -> None:
    bucket, _ = take(None, limit=10, window_s=60, now=0.0, cost=10)
    bucket, allowed = take(bucket, limit=10, window_s=60, now=5.9)
    assert not allowed
    bucket, allowed = take(bucket, limit=10, window_s=60, now=6.0)
    assert allowed
    bucket, _ = take(bucket, limit=10, window_s=60, now=10_000.0)
    assert bucket.tokens == 9  # refill is capped at the limit


def test_decision_headers() -> None:
    empty = decide(0.25, allowed=False, limit=60, window_s=60)
    assert (empty.remaining, empty.retry_after_s, empty.reset_s) == (0, 1, 60)
    assert empty.headers() == {
        "RateLimit-Limit": "60",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "60",
        "Retry-After": "1",
    }
    slow = decide(0.0, allowed=False, limit=2, window_s=60)
    assert slow.retry_after_s == 30
    assert slow.reset_s == 60
    ok = decide(7.5, allowed=True, limit=10, window_s=60)
    assert (ok.remaining, ok.retry_after_s, ok.reset_s) == (7, 0, 15)
    assert "Retry-After" not in ok.headers()


class _BrokenRedis:
    def __init__(self) -> None:
        self.calls = 0

    async def evalsha(self, *_args: Any) -> Any:
        self.calls += 1
        raise ConnectionError("redis is down")


def test_redis_outage_falls_back_and_backs_off() -> None:
    now = [0.0]
    redis = _BrokenRedis()
    limiter = RateLimiter(redis, retry_redis_after_s=5.0, clock=lambda: now[0])

    async def hits(n: int) -> list[Decision]:
        return [await limiter.hit("k", limit=3) for _ in range(n)]

    decisions = asyncio.run(hits(4))
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert {d.backend for d in decisions} == {"local"}
    assert redis.calls == 1  # no connection attempt per request while backing off
    now[0] = 5.1
    asyncio.run(hits(1))
    assert redis.calls == 2


def test_a_zero_limit_refuses_without_asking_redis() -> None:
    redis = _BrokenRedis()
    decision = asyncio.run(RateLimiter(redis).hit("k", limit=0))
    assert not decision.allowed
    assert redis.calls == 0


def test_local_buckets_are_bounded() -> None:
    buckets = LocalBuckets(max_keys=2, clock=lambda: 0.0)
    for key in ("a", "b", "c"):
        buckets.hit(key, limit=1, window_s=60)
    assert buckets.hit("a", limit=1, window_s=60).allowed  # evicted, so a fresh bucket
    assert not buckets.hit("c", limit=1, window_s=60).allowed
