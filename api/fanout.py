"""Admin requests every API instance answers: broadcasts and connection listings.

WebSockets live in the instance that accepted them, and Cloud Run (or several server processes,
decision 0202) runs more than one instance. `POST /v2/broadcast` and `GET /v2/connections`
therefore ask every instance over Redis pub/sub: the answering instance publishes the request
on one channel, every subscribed instance (itself included) acts on its own connections and
pushes its reply onto a list named after the request, and the asker collects as many replies
as PUBLISH reported subscribers, for at most `timeout_s`.

Without Redis (down, or not subscribed yet) the instance answers for itself alone and says so
(`scope: instance`), as the rate limiter falls back to local buckets: admin calls degrade, they
do not fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from api.streaming import ConnectionRegistry

log = logging.getLogger(__name__)

CHANNEL = "codex-cloud:admin"
REPLY_PREFIX = "codex-cloud:admin-reply:"
# Replies nobody collects (an asker that gave up) expire on their own.
REPLY_TTL_S = 30


@dataclass(frozen=True)
class Answers:
    replies: list[Any]
    # Instances that were asked (PUBLISH's subscriber count) and the scope of the answer:
    # "all" (every instance answered), "partial" (some did not in time) or "instance".
    instances: int
    scope: str


class AdminFanout:
    def __init__(
        self,
        redis: Any,
        registry: ConnectionRegistry,
        *,
        instance_id: str | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        # A client without a socket timeout: the subscription and BLPOP wait by design.
        self._redis = redis
        self._registry = registry
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._timeout_s = timeout_s
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "broadcast": self._broadcast_here,
            "connections": self._connections_here,
        }

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="admin-fanout")

    async def wait_subscribed(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        return self._subscribed.is_set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        await self._redis.aclose()

    # ---- asking --------------------------------------------------------------------------

    async def broadcast(
        self, target: str, value: str | None, message: dict[str, Any]
    ) -> tuple[int, Answers]:
        """Deliver `message` to matching connections on every instance; (delivered, answers)."""
        answers = await self._ask(
            "broadcast", {"target": target, "value": value, "message": message}
        )
        return sum(int(n) for n in answers.replies), answers

    async def connections(self) -> tuple[list[dict[str, Any]], Answers]:
        answers = await self._ask("connections", {})
        return [c for reply in answers.replies for c in reply], answers

    async def _ask(self, op: str, payload: dict[str, Any]) -> Answers:
        if self._subscribed.is_set():
            try:
                # Bounded even if Redis stops answering without closing the connection.
                return await asyncio.wait_for(
                    self._ask_everyone(op, payload), self._timeout_s + 1.0
                )
            except Exception as exc:  # any Redis error: answer for this instance alone
                log.warning(
                    "admin fan-out unavailable, answering for this instance only",
                    extra={"fields": {"error": type(exc).__name__}},
                )
        return Answers([await self._handlers[op](payload)], 1, "instance")

    async def _ask_everyone(self, op: str, payload: dict[str, Any]) -> Answers:
        request_id = uuid.uuid4().hex
        reply_key = REPLY_PREFIX + request_id
        asked = int(
            await self._redis.publish(CHANNEL, json.dumps({"op": op, "id": request_id, **payload}))
        )
        replies: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            while len(replies) < asked:
                left = deadline - loop.time()
                if left <= 0:
                    break
                got = await self._redis.blpop([reply_key], timeout=left)
                if got is None:
                    break
                replies.append(json.loads(got[1]))
        finally:
            await self._redis.delete(reply_key)
        if len(replies) < asked:
            log.warning("admin fan-out: %d of %d instances answered", len(replies), asked)
        return Answers(replies, asked, "all" if len(replies) == asked else "partial")

    # ---- answering -----------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._subscribed.set()
                    backoff = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._answer(message["data"])
            except asyncio.CancelledError:
                self._subscribed.clear()
                raise
            except Exception as exc:  # Redis gone: answer locally, resubscribe later
                if self._subscribed.is_set():
                    log.warning(
                        "admin fan-out subscription lost",
                        extra={"fields": {"error": type(exc).__name__}},
                    )
                self._subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _answer(self, raw: str) -> None:
        try:
            request = json.loads(raw)
            handler = self._handlers[request["op"]]
            reply_key = REPLY_PREFIX + str(request["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("admin fan-out: ignored a malformed request")
            return
        reply = await handler(request)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(reply_key, json.dumps(reply))
            pipe.expire(reply_key, REPLY_TTL_S)
            await pipe.execute()

    async def _broadcast_here(self, request: dict[str, Any]) -> int:
        return await self._registry.broadcast(
            request["target"], request.get("value"), request["message"]
        )

    async def _connections_here(self, _request: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**c.describe(), "instance_id": self.instance_id} for c in self._registry.all()]
