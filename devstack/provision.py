"""Create the topology (topics, subscriptions, buckets, queues) in the emulators, and the
Firestore trigger registrations that stand in for Eventarc."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as storage
import httpx
from google.api_core import exceptions as gexc

from shared.adapters.tasks import TaskQueue
from shared.settings import Settings
from shared.topology import Topology

log = logging.getLogger(__name__)


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(duration[:-1]) * units[duration[-1]]


def provision_pubsub(
    settings: Settings, topology: Topology, push_endpoints: Mapping[str, str]
) -> None:
    """Topics, then subscriptions (push where an endpoint is given), with dead-letter policies."""
    project = settings.project_id
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for spec in topology.topics.values():
            path = publisher.topic_path(project, spec.name)
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(request={"name": path})
        for key, sub in topology.subscriptions.items():
            request: dict[str, object] = {
                "name": subscriber.subscription_path(project, sub.name),
                "topic": publisher.topic_path(project, topology.topics[sub.topic].name),
                "ack_deadline_seconds": sub.ack_deadline,
                "message_retention_duration": {"seconds": _seconds(sub.retention)},
            }
            if sub.dead_letter_topic:
                request["dead_letter_policy"] = {
                    "dead_letter_topic": publisher.topic_path(
                        project, topology.topics[sub.dead_letter_topic].name
                    ),
                    "max_delivery_attempts": sub.max_delivery_attempts or 5,
                }
                request["retry_policy"] = {
                    "minimum_backoff": {"seconds": 1},
                    "maximum_backoff": {"seconds": 10},
                }
            if key in push_endpoints:
                request["push_config"] = {"push_endpoint": push_endpoints[key]}
            with contextlib.suppress(gexc.AlreadyExists):
                subscriber.create_subscription(request=request)
    finally:
        subscriber.close()


def provision_buckets(settings: Settings, topology: Topology) -> None:
    client = storage.Client(project=settings.project_id)
    for spec in topology.buckets.values():
        with contextlib.suppress(gexc.Conflict):
            client.create_bucket(spec.name)


def provision_queues(settings: Settings, topology: Topology) -> None:
    tasks = TaskQueue(settings)
    parent = f"projects/{settings.project_id}/locations/{settings.tasks_location}"
    for key, spec in topology.queues.items():
        queue = {
            "name": tasks.queue_path(key),
            "rate_limits": {
                "max_dispatches_per_second": spec.max_dispatches_per_second,
                "max_concurrent_dispatches": spec.max_concurrent_dispatches,
            },
            "retry_config": {"max_attempts": spec.max_attempts},
        }
        with contextlib.suppress(gexc.AlreadyExists):
            tasks.client.create_queue(request={"parent": parent, "queue": queue})


def register_firestore_trigger(
    firestore_host: str, project: str, trigger_id: str, document_pattern: str
) -> None:
    """Ask the Firestore emulator to post document-written events for `document_pattern`."""
    resp = httpx.post(
        f"http://{firestore_host}/emulator/v1/projects/{project}/eventarcTrigger",
        params={"eventarcTriggerId": trigger_id},
        json={
            "eventType": "google.cloud.firestore.document.v1.written",
            "database": "(default)",
            "namespace": "(default)",
            "document": {"value": document_pattern, "matchType": "PATH_PATTERN"},
        },
        timeout=10,
    )
    resp.raise_for_status()


def add_push_subscription(settings: Settings, topic: str, name: str, endpoint: str) -> None:
    """An extra push subscription outside the topology (the local probe)."""
    subscriber = pubsub_v1.SubscriberClient()
    try:
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(settings.project_id, name),
                "topic": f"projects/{settings.project_id}/topics/{topic}",
                "push_config": {"push_endpoint": endpoint},
                "ack_deadline_seconds": 30,
            }
        )
    except gexc.AlreadyExists:
        pass
    finally:
        subscriber.close()
