"""The rate limiter against the stack's real Redis: blocking and asyncio callers, one bucket."""

from __future__ import annotations

import asyncio
import uuid

from shared.adapters.redis import make_async_redis, make_redis
from shared.ratelimit import Decision, RateLimiter
from shared.settings import Settings


def test_blocking_and_asyncio_hits_draw_from_one_bucket(settings: Settings) -> None:
    key = f"test-{uuid.uuid4().hex}"

    async def scenario() -> list[Decision]:
        async_client = make_async_redis(settings)
        try:
            limiter = RateLimiter(make_redis(settings), async_client=async_client)
            first = limiter.hit(key, limit=3, window_s=60)
            rest = [await limiter.hit_async(key, limit=3, window_s=60) for _ in range(3)]
            return [first, *rest]
        finally:
            await async_client.aclose()

    decisions = asyncio.run(scenario())

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.backend for d in decisions} == {"redis"}
    assert decisions[-1].retry_after_s >= 1
