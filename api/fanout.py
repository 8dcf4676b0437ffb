"""Admin requests every API instance answers: broadcasts and connection listings.

WebSockets live in the instance that accepted them, and Cloud Run (or several server processes,
decision 0202) runs more than one instance. `POST /v2/broadcast` and `GET /v2/connections`
therefore ask every instance over Redis pub/sub: the answering instance publishes the request
on one channel, every subscribed instance (itself included) acts on its own connections and
pushes its reply onto a list named after the request, and the asker collects as many replies
as PUBLISH reported subscribers, for at most `timeout_s`.

Without Redis (down, or this instance not subscribed) the instance answers for itself alone
and says so (`scope: instance`), as the rate limiter falls back to local buckets: admin calls
degrade, they do not fail. Once a request is published it is never also acted on locally
(that would deliver a broadcast twice): missing replies make the answer `partial`.
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
# How long the subscriber waits for a message at a time: each read lets the client check the
# connection's health (redis-py pings once `health_check_interval` has passed), and it stays
# under the client's socket timeout.
POLL_S = 1.0


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
        # The client's socket timeout must exceed `timeout_s` (BLPOP waits up to that long).
        self._redis = redis
        self._registry = registry
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._timeout_s = timeout_s
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()
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
        tasks = [t for t in (self._task, *self._answering) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # wait(), not await: a cancellation aimed at the caller still reaches it.
            await asyncio.wait(tasks)
        self._task = None

    async def close(self) -> None:
        await self._redis.aclose()

    # ---- asking --------------------------------------------------------------------------

    async def broadcast(
        self, target: str, value: str | None, message: dict[str, Any], tenant: str | None = None
    ) -> tuple[int, Answers]:
        """Deliver `message` to matching connections on every instance; (delivered, answers).
        `tenant` narrows the target (see `ConnectionRegistry.matching`)."""
        answers = await self._ask(
            "broadcast", {"target": target, "value": value, "message": message, "tenant": tenant}
        )
        return sum(int(n) for n in answers.replies), answers

    async def connections(self) -> tuple[list[dict[str, Any]], Answers]:
        answers = await self._ask("connections", {})
        return [c for reply in answers.replies for c in reply], answers

    async def _ask(self, op: str, payload: dict[str, Any]) -> Answers:
        request_id = uuid.uuid4().hex
        asked = 0
        if self._subscribed.is_set():
            request = json.dumps({"op": op, "id": request_id, **payload})
            try:
                asked = int(
                    await asyncio.wait_for(self._redis.publish(CHANNEL, request), self._timeout_s)
                )
            except Exception as exc:  # Redis unreachable: nothing was sent
                log.warning(
                    "admin fan-out unavailable, answering for this instance only",
                    extra={"fields": {"error": type(exc).__name__}},
                )
        if asked == 0:
            # Not published, or published to nobody (not even this instance's subscription,
            # which has then lost its connection without noticing yet).
            return Answers([await self._handlers[op](payload)], 1, "instance")
        replies = await self._collect(REPLY_PREFIX + request_id, asked)
        if len(replies) < asked:
            log.warning("admin fan-out: %d of %d instances answered", len(replies), asked)
        return Answers(replies, asked, "all" if len(replies) == asked else "partial")

    async def _collect(self, reply_key: str, asked: int) -> list[Any]:
        replies: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            while len(replies) < asked:
                left = deadline - loop.time()
                if left <= 0:
                    break
                got = await asyncio.wait_for(
                    self._redis.blpop([reply_key], timeout=left), left + 0.5
                )
                if got is None:
                    break
                replies.append(json.loads(got[1]))
        except Exception as exc:  # what arrived still counts; the rest is `partial`
            log.warning(
                "admin fan-out: collecting replies failed",
                extra={"fields": {"error": type(exc).__name__}},
            )
        finally:
            # Late replies expire anyway; this only tidies up, and never holds the answer.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._redis.delete(reply_key), 0.5)
        return replies

    # ---- answering -----------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=POLL_S)
                        if message is None:
                            continue
                        if message.get("type") == "subscribe":
                            # Only now does PUBLISH count this instance.
                            self._subscribed.set()
                            backoff = 0.5
                        elif message.get("type") == "message":
                            self._spawn_answer(message["data"])
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

    def _spawn_answer(self, raw: str) -> None:
        # Each request on its own task: a slow socket or a failed reply delays only its own
        # answer, never the subscription or other instances' requests.
        task = asyncio.create_task(self._answer(raw))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, raw: str) -> None:
        try:
            request = json.loads(raw)
            handler = self._handlers[request["op"]]
            reply_key = REPLY_PREFIX + str(request["id"])
            reply = await asyncio.wait_for(handler(request), self._timeout_s)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(reply_key, json.dumps(reply))
                pipe.expire(reply_key, REPLY_TTL_S)
                await pipe.execute()
        except Exception as exc:  # the asker sees a missing reply (`partial`)
            log.warning(
                "admin fan-out: could not answer a request",
                extra={"fields": {"error": type(exc).__name__}},
            )

    async def _broadcast_here(self, request: dict[str, Any]) -> int:
        return await self._registry.broadcast(
            request["target"], request.get("value"), request["message"], request.get("tenant")
        )

    async def _connections_here(self, _request: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**c.describe(), "instance_id": self.instance_id} for c in self._registry.all()]
