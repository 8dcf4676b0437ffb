"""Redis (Memorystore) client factories."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from shared.settings import Settings


def _options(socket_timeout: float | None) -> dict[str, Any]:
    # Short timeouts: rate limiting must degrade (documented fallback), never hang a request.
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 0.5,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def make_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, **_options(0.5))


def make_async_redis(
    settings: Settings, *, socket_timeout: float | None = 0.5
) -> redis.asyncio.Redis:
    """The asyncio client, for code on an event loop (the same short timeouts, unless a caller
    that waits on purpose, such as BLPOP, asks for a longer one)."""
    return redis.asyncio.Redis.from_url(settings.redis_url, **_options(socket_timeout))
