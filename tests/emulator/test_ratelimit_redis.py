"""The rate limiter against the stack's real Redis: the Lua bucket, its headers' figures."""

from __future__ import annotations

import asyncio
import uuid

from shared.adapters.redis import make_async_redis
from shared.ratelimit import Decision, RateLimiter
from shared.settings import Settings


def test_a_burst_of_limit_is_allowed_then_refused_with_a_retry_time(settings: Settings) -> None:
    key = f"test-{uuid.uuid4().hex}"

    async def scenario() -> list[Decision]:
        client = make_async_redis(settings)
        try:
            limiter = RateLimiter(client)
            return [await limiter.hit(key, limit=3, window_s=60) for _ in range(4)]
        finally:
            await client.aclose()

    decisions = asyncio.run(scenario())

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.backend for d in decisions} == {"redis"}
    assert decisions[-1].retry_after_s >= 1


def test_the_bucket_survives_redis_forgetting_its_script(settings: Settings) -> None:
    """A restarted or flushed Redis no longer knows the script: it is loaded again, and the
    bucket keeps counting (no fallback to the in-process buckets)."""
    key = f"test-{uuid.uuid4().hex}"

    async def scenario() -> list[Decision]:
        client = make_async_redis(settings)
        try:
            limiter = RateLimiter(client)
            first = await limiter.hit(key, limit=3, window_s=60)
            await client.script_flush()
            return [first, await limiter.hit(key, limit=3, window_s=60)]
        finally:
            await client.aclose()

    decisions = asyncio.run(scenario())

    assert [d.remaining for d in decisions] == [2, 1]
    assert {d.backend for d in decisions} == {"redis"}
