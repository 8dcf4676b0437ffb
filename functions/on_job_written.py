"""Firestore `jobs/{jobId}` written → dispatch (new queued job) or terminal side effects
(CloudEvent `google.cloud.firestore.document.v1.written`, protobuf DocumentEventData body)."""

from __future__ import annotations

import base64
import binascii
import logging

import functions_framework
from cloudevents.http.event import CloudEvent
from google.events.cloud.firestore import DocumentEventData

from shared.services.common import stale_cloudevent
from shared.services.completion import complete_job
from shared.services.dispatch import dispatch_job
from shared.services.runtime import invocation, process_adapters
from shared.services.transitions import (
    Action,
    action_for,
    creation_cursor,
    decode_job_write,
    written_record,
)

log = logging.getLogger("functions.on_job_written")


def decode_event_data(data: object) -> DocumentEventData | None:
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    if not isinstance(data, bytes | bytearray):
        return None
    try:
        decoded: DocumentEventData = DocumentEventData.deserialize(bytes(data))
        return decoded
    except Exception:  # protobuf raises DecodeError and friends; any of them means "not ours"
        return None


@functions_framework.cloud_event
def on_job_written(event: CloudEvent) -> None:
    adapters = process_adapters()
    attributes = event.get_attributes()
    with invocation(attributes):
        if stale_cloudevent(attributes, adapters.settings.event_max_age_s):
            log.warning("dropping a stale job event")
            return
        data = decode_event_data(event.get_data())
        if data is None:
            log.error("ignoring an undecodable document event")
            return
        write = decode_job_write(data, attributes.get("subject"))
        if write is None:
            return
        action = action_for(write)
        if action is Action.NONE:
            return
        with invocation({}, job_id=write.job_id, action=action.value):
            if action is Action.DISPATCH:
                cursor = creation_cursor(data, adapters.firestore)
                dispatch = dispatch_job(adapters, write.job_id, cursor)
                log.info(
                    "dispatch outcome",
                    extra={"fields": {"outcome": dispatch.status, "reason": dispatch.reason}},
                )
            else:
                written = written_record(data, adapters.firestore)
                done = complete_job(adapters, write.job_id, written)
                log.info(
                    "terminal effects",
                    extra={"fields": {"performed": done.performed, "skipped": done.skipped}},
                )
