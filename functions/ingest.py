"""Pub/Sub codex-jobs → job (CloudEvent `google.cloud.pubsub.topic.v1.messagePublished`).

Returns normally (ack) for created, duplicate and dead-lettered messages; raises on transient
dependency errors so Pub/Sub redelivers (the subscription's DLQ policy bounds that).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import functions_framework
from cloudevents.http.event import CloudEvent

from shared.services.ingest import PubSubMessage, ingest_message
from shared.services.runtime import invocation, process_adapters

log = logging.getLogger("functions.ingest")


def decode_message(data: Any) -> PubSubMessage | None:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        return None
    message = data["message"]
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        raw = str(message.get("data") or "").encode()
    return PubSubMessage(
        data=raw,
        attributes={str(k): str(v) for k, v in (message.get("attributes") or {}).items()},
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        publish_time=message.get("publishTime") or message.get("publish_time") or None,
        subscription=str(data.get("subscription") or ""),
    )


@functions_framework.cloud_event
def ingest(event: CloudEvent) -> None:
    adapters = process_adapters()
    with invocation(event.get_attributes()):
        message = decode_message(event.get_data())
        if message is None or not message.message_id:
            # Not a Pub/Sub envelope: nothing to dead-letter, and retrying cannot fix it.
            log.error("ignoring a malformed messagePublished event")
            return
        outcome = ingest_message(adapters, message)
        log.info(
            "ingest outcome",
            extra={
                "fields": {
                    "outcome": outcome.status,
                    "job_id": outcome.job_id,
                    "reason": outcome.reason,
                }
            },
        )
