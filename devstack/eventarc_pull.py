"""Pull delivery for the local Eventarc stand-in's Pub/Sub triggers.

Eventarc delivers Pub/Sub messages by push. The emulator's push loop looks at a subscription
only every 100 ms (a constant in the emulator), which adds 50 ms on average to every message —
far more than Pub/Sub push does. Its hanging pull looks every 50 ms from the moment the pull
arrived, so a few pulls kept outstanding at staggered times see a new message within ~10 ms on
average, at the cost of a few backlog checks a second inside the emulator.

What is pulled is delivered exactly as a push would be: the same envelope becomes the same
CloudEvent; a 2xx answer acks the message; anything else leaves it unacked for the
subscription's retry-policy backoff (its ack deadline is set to that backoff, doubling per
delivery attempt) after which Pub/Sub redelivers it, and after `max_delivery_attempts` the
emulator moves it to the dead-letter topic, as Pub/Sub does with a push subscription.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.pubsub_v1.services.subscriber import SubscriberAsyncClient
from google.pubsub_v1.services.subscriber.transports.grpc_asyncio import (
    SubscriberGrpcAsyncIOTransport,
)
from google.pubsub_v1.types import ReceivedMessage

log = logging.getLogger("devstack.eventarc")

# The emulator's hanging pull checks the backlog this often (from when the pull arrived).
EMULATOR_PULL_POLL_S = 0.05
OUTSTANDING_PULLS = 4
# A hanging pull that found nothing returns when less than a second of its deadline is left.
PULL_DEADLINE_S = 30.0
MAX_MESSAGES = 100

Deliver = Callable[[dict[str, Any]], Awaitable[int]]


def push_envelope(received: ReceivedMessage, subscription: str) -> dict[str, Any]:
    """The body a push subscription would have POSTed for this message."""
    message = received.message
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": message.publish_time.rfc3339(),
        },
        "subscription": subscription,
    }


def retry_delay_s(delivery_attempt: int, min_backoff_s: float, max_backoff_s: float) -> int:
    """Seconds until a failed message comes back: the retry policy's exponential backoff, in
    the whole seconds an ack deadline takes."""
    delay = min(max_backoff_s, min_backoff_s * 2.0 ** max(0, delivery_attempt - 1))
    return max(1, math.ceil(delay))


def delivered(status: int) -> bool:
    return status == 102 or 200 <= status < 300  # what Pub/Sub push counts as an ack


class SubscriptionPuller:
    """Keeps `OUTSTANDING_PULLS` hanging pulls on one subscription and delivers each message."""

    def __init__(
        self,
        client: SubscriberAsyncClient,
        subscription: str,
        deliver: Deliver,
        *,
        min_backoff_s: float,
        max_backoff_s: float,
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._deliver = deliver
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._handling: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await asyncio.gather(*(self._pull_loop(i) for i in range(OUTSTANDING_PULLS)))

    async def _pull_loop(self, index: int) -> None:
        # Staggered, so the emulator's checks for the outstanding pulls spread over its period.
        await asyncio.sleep(index * EMULATOR_PULL_POLL_S / OUTSTANDING_PULLS)
        while True:
            try:
                response = await self._client.pull(
                    request={"subscription": self._subscription, "max_messages": MAX_MESSAGES},
                    timeout=PULL_DEADLINE_S,
                )
            except (gexc.GoogleAPICallError, grpc.RpcError) as exc:
                log.warning("pull from %s failed: %s", self._subscription, exc)
                await asyncio.sleep(0.5)
                continue
            for received in response.received_messages:
                task = asyncio.create_task(self._handle(received))
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)

    async def _handle(self, received: ReceivedMessage) -> None:
        status = await self._deliver(push_envelope(received, self._subscription))
        try:
            if delivered(status):
                await self._client.acknowledge(
                    request={"subscription": self._subscription, "ack_ids": [received.ack_id]}
                )
                return
            delay = retry_delay_s(
                received.delivery_attempt or 1, self._min_backoff_s, self._max_backoff_s
            )
            await self._client.modify_ack_deadline(
                request={
                    "subscription": self._subscription,
                    "ack_ids": [received.ack_id],
                    "ack_deadline_seconds": delay,
                }
            )
        except (gexc.GoogleAPICallError, grpc.RpcError) as exc:
            # The ack deadline then runs out and Pub/Sub redelivers: late, never lost.
            log.warning("ack on %s failed: %s", self._subscription, exc)


class Pullers:
    """The pullers of every pull trigger, on one channel to the emulator."""

    def __init__(self, emulator_host: str) -> None:
        self._host = emulator_host
        self._channel: grpc.aio.Channel | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, subscriptions: dict[str, Deliver]) -> None:
        self._channel = grpc.aio.insecure_channel(self._host)
        transport = SubscriberGrpcAsyncIOTransport(channel=self._channel)
        client = SubscriberAsyncClient(transport=transport)
        for subscription, deliver in subscriptions.items():
            self._tasks.append(
                asyncio.create_task(
                    self._run(client, subscription, deliver), name=f"pull {subscription}"
                )
            )

    @staticmethod
    async def _run(client: SubscriberAsyncClient, subscription: str, deliver: Deliver) -> None:
        # The stand-in starts before the stack provisions the subscriptions.
        while True:
            try:
                current = await client.get_subscription(request={"subscription": subscription})
                break
            except (gexc.GoogleAPICallError, grpc.RpcError):
                await asyncio.sleep(0.1)
        policy = current.retry_policy
        puller = SubscriptionPuller(
            client,
            subscription,
            deliver,
            # Pub/Sub's defaults when a subscription names no retry policy.
            min_backoff_s=policy.minimum_backoff.total_seconds() or 10.0,
            max_backoff_s=policy.maximum_backoff.total_seconds() or 600.0,
        )
        await puller.run()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
