"""The Eventarc stand-in's pull delivery against the real Pub/Sub emulator: a message reaches the
function as a push envelope and is acked on success; a failing one comes back after the retry
policy's backoff and lands on the dead-letter topic after max_delivery_attempts, as with push."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import uuid
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1

from devstack.eventarc_pull import Pullers, retry_delay_s


def _subscription_with_dead_letters(project: str) -> tuple[str, str, str]:
    """A topic with a pull subscription (5 attempts, then a dead-letter topic) and a
    subscription on the dead-letter topic."""
    suffix = uuid.uuid4().hex[:8]
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name=publisher.topic_path(project, f"t-{suffix}")).name
    dead = publisher.create_topic(name=publisher.topic_path(project, f"dlq-{suffix}")).name
    dead_sub = subscriber.create_subscription(
        name=subscriber.subscription_path(project, f"dlq-{suffix}"), topic=dead
    ).name
    sub = subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, f"s-{suffix}"),
            "topic": topic,
            "ack_deadline_seconds": 30,
            "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 5},
            "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 1}},
        }
    ).name
    for message in (b"good", b"bad"):
        publisher.publish(topic, message, kind=message.decode()).result()
    subscriber.close()
    return topic, sub, dead_sub


def test_delivers_acks_retries_with_backoff_then_dead_letters(
    stack_env: dict[str, str], settings: Any
) -> None:
    _, sub, dead_sub = _subscription_with_dead_letters(settings.project_id)
    seen: list[tuple[float, dict[str, Any]]] = []

    async def run() -> None:
        fifth_bad = asyncio.Event()

        async def deliver(envelope: dict[str, Any]) -> int:
            seen.append((time.monotonic(), envelope))
            if _bad(seen) >= 5:
                fifth_bad.set()
            return 200 if base64.b64decode(envelope["message"]["data"]) == b"good" else 500

        pullers = Pullers(stack_env["PUBSUB_EMULATOR_HOST"])
        pullers.start({sub: deliver})
        try:
            await asyncio.wait_for(fifth_bad.wait(), 30)
            await asyncio.sleep(1.5)  # a sixth delivery would come by now
        finally:
            await pullers.stop()

    asyncio.run(run())

    good = [e for _, e in seen if e["message"]["attributes"]["kind"] == "good"]
    assert len(good) == 1  # acked: never redelivered
    assert good[0]["subscription"] == sub
    assert good[0]["message"]["messageId"]
    assert good[0]["message"]["publishTime"].endswith("Z")
    bad_times = [t for t, e in seen if e["message"]["attributes"]["kind"] == "bad"]
    assert len(bad_times) == 5  # max_delivery_attempts, then no more
    assert min(b - a for a, b in itertools.pairwise(bad_times)) >= 0.9

    subscriber = pubsub_v1.SubscriberClient()
    try:
        response = subscriber.pull(subscription=dead_sub, max_messages=10, timeout=10)
    finally:
        subscriber.close()
    (dead,) = response.received_messages
    assert dead.message.data == b"bad"
    assert (
        dead.message.attributes["CloudPubSubDeadLetterSourceSubscription"] == sub.rsplit("/", 1)[-1]
    )


def _bad(seen: list[tuple[float, dict[str, Any]]]) -> int:
    return sum(1 for _, e in seen if e["message"]["attributes"]["kind"] == "bad")


def test_backoff_doubles_per_attempt_within_the_policy_in_whole_seconds() -> None:
    assert [retry_delay_s(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert retry_delay_s(1, 0.1, 10.0) == 1  # an ack deadline is at least a second
