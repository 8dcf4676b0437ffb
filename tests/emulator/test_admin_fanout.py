"""Admin fan-out over the stack's real Redis: every instance answers, a silent one is waited
for only so long, and without Redis an instance answers for itself."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio

from api.fanout import CHANNEL, AdminFanout
from api.streaming import ConnectionRegistry
from devstack.ports import free_port
from shared.adapters.redis import make_async_redis
from shared.settings import Settings


def _registry_with(
    sessions: list[str], received: list[dict[str, Any]], tenant: str = "t1"
) -> ConnectionRegistry:
    registry = ConnectionRegistry()

    async def send(message: dict[str, Any]) -> None:
        received.append({**message, "tenant": tenant})

    for session in sessions:
        registry.add(session_id=session, tenant=tenant, key_id="k", send=send)
    return registry


def test_two_instances_answer_and_a_silent_subscriber_is_waited_for_only_so_long(
    settings: Settings,
) -> None:
    async def scenario() -> tuple[Any, ...]:
        received: list[dict[str, Any]] = []
        one = AdminFanout(
            make_async_redis(settings, socket_timeout=2.0),
            _registry_with(["s1", "s2"], received),
            timeout_s=0.5,
        )
        two = AdminFanout(
            make_async_redis(settings, socket_timeout=2.0),
            _registry_with(["s3"], received),
            timeout_s=0.5,
        )
        for fanout in (one, two):
            fanout.start()
            assert await fanout.wait_subscribed(5)
        try:
            # Garbage on the channel is ignored; the subscriptions keep answering.
            await one._redis.publish(CHANNEL, "not json")
            delivered, answers = await one.broadcast("all", None, {"hello": 1})
            listed, _ = await two.connections()
            # A third subscriber that never answers (an instance stuck or going away).
            silent = make_async_redis(settings, socket_timeout=2.0).pubsub()
            await silent.subscribe(CHANNEL)
            started = asyncio.get_running_loop().time()
            partial_delivered, partial = await two.broadcast("session", "s3", {"x": 1})
            waited = asyncio.get_running_loop().time() - started
            await silent.aclose()  # type: ignore[no-untyped-call]
        finally:
            for fanout in (one, two):
                await fanout.stop()
                await fanout.close()
        return delivered, answers, listed, received, partial_delivered, partial, waited

    delivered, answers, listed, received, partial_delivered, partial, waited = asyncio.run(
        scenario()
    )
    # The two here and the stack's own API.
    assert (delivered, answers.instances, answers.scope) == (3, 3, "all")
    assert sorted(c["session_id"] for c in listed) == ["s1", "s2", "s3"]
    assert len({c["instance_id"] for c in listed}) == 2
    assert sorted(m["session_id"] for m in received if "hello" in m) == ["s1", "s2", "s3"]
    assert (partial_delivered, partial.instances, partial.scope) == (1, 4, "partial")
    # Published once: a partial answer never makes the asker deliver again by itself.
    assert [m["session_id"] for m in received if "x" in m] == ["s3"]
    assert 0.4 <= waited < 2.0


def test_a_session_broadcast_with_a_tenant_reaches_only_that_tenants_session(
    settings: Settings,
) -> None:
    async def scenario() -> tuple[int, int, list[dict[str, Any]]]:
        received: list[dict[str, Any]] = []
        # Two tenants chose the same session id, on different instances.
        fanouts = [
            AdminFanout(
                make_async_redis(settings, socket_timeout=2.0),
                _registry_with(["build-1"], received, tenant=tenant),
                timeout_s=0.5,
            )
            for tenant in ("t1", "t2")
        ]
        for fanout in fanouts:
            fanout.start()
            assert await fanout.wait_subscribed(5)
        try:
            narrowed, _ = await fanouts[0].broadcast("session", "build-1", {"n": 1}, tenant="t2")
            wide, _ = await fanouts[0].broadcast("session", "build-1", {"n": 2})
        finally:
            for fanout in fanouts:
                await fanout.stop()
                await fanout.close()
        return narrowed, wide, received

    narrowed, wide, received = asyncio.run(scenario())
    assert (narrowed, wide) == (1, 2)
    assert [m["tenant"] for m in received if m.get("n") == 1] == ["t2"]


def test_without_redis_an_instance_answers_for_itself() -> None:
    async def scenario() -> tuple[Any, ...]:
        received: list[dict[str, Any]] = []
        unreachable = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.2)
        fanout = AdminFanout(unreachable, _registry_with(["s1"], received), timeout_s=0.5)
        fanout.start()
        try:
            subscribed = await fanout.wait_subscribed(0.5)
            delivered, answers = await fanout.broadcast("tenant", "t1", {"hello": 1})
            listed, listing = await fanout.connections()
        finally:
            await fanout.stop()
            await fanout.close()
        return subscribed, delivered, answers, listed, listing, received

    subscribed, delivered, answers, listed, listing, received = asyncio.run(scenario())
    assert not subscribed
    assert (delivered, answers.instances, answers.scope) == (1, 1, "instance")
    assert [c["session_id"] for c in listed] == ["s1"]
    assert listing.scope == "instance"
    assert received[0]["hello"] == 1
