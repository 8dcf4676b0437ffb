"""What a Firestore `document.v1.written` event on `jobs/{id}` asks us to do.

Only transitions matter: a write that leaves the status unchanged (heartbeats, event appends,
cancel flags) needs no action, which is what keeps on_job_written loop-free.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.cloud.firestore_v1 import _helpers as firestore_helpers
from google.cloud.firestore_v1.types import Document as FirestoreDocument
from google.events.cloud.firestore import Document as EventDocument
from google.events.cloud.firestore import DocumentEventData
from pydantic import ValidationError

from shared.jobstore import EventCursor, decode_record
from shared.models import JobRecord, JobStatus

log = logging.getLogger(__name__)


class Action(StrEnum):
    DISPATCH = "dispatch"
    COMPLETE = "complete"
    NONE = "none"


@dataclass(frozen=True)
class JobWrite:
    job_id: str
    old_status: JobStatus | None
    new_status: JobStatus | None


def _status(document: object) -> JobStatus | None:
    fields = getattr(document, "fields", None)
    if not fields or "status" not in fields:
        return None
    try:
        return JobStatus(fields["status"].string_value)
    except ValueError:
        return None


def decode_job_write(data: DocumentEventData, subject: str | None = None) -> JobWrite | None:
    """The job id and the old/new status, or None when the event is not about a job document."""
    name = data.value.name or data.old_value.name
    if not name and subject:
        name = subject
    parts = name.split("/documents/", 1)[-1].split("/") if name else []
    if len(parts) != 2 or not parts[1]:
        return None  # a subcollection document or something unexpected
    old = _status(data.old_value) if data.old_value.name else None
    new = _status(data.value) if data.value.name else None
    return JobWrite(job_id=parts[1], old_status=old, new_status=new)


def action_for(write: JobWrite) -> Action:
    new, old = write.new_status, write.old_status
    if new is None:
        return Action.NONE  # deleted
    if new is JobStatus.QUEUED and old is not JobStatus.QUEUED:
        return Action.DISPATCH
    if new.terminal and (old is None or not old.terminal):
        return Action.COMPLETE
    return Action.NONE


def _written_fields(data: DocumentEventData, client: Any) -> dict[str, Any] | None:
    """The job document's fields as the event's write left them, decoded as a read decodes
    them; None when the event carries no document.

    The event's `Document` and Firestore's own have the same wire format, so the Firestore
    client's decoding applies (timestamps, maps, references to `client`)."""
    if not data.value.name:
        return None
    document = FirestoreDocument.deserialize(EventDocument.serialize(data.value))
    fields = firestore_helpers.decode_dict(document.fields, client)
    return fields if isinstance(fields, dict) else None


def written_record(data: DocumentEventData, client: Any) -> JobRecord | None:
    """The job as the event's write left it, or None when the event does not carry a whole job
    document (the caller then reads it). Saves the read a handler would otherwise make of a
    document it was just sent."""
    try:
        fields = _written_fields(data, client)
        return decode_record(fields) if fields is not None else None
    except (ValidationError, ValueError, TypeError) as exc:
        log.info("event carries no whole job document; reading it: %s", type(exc).__name__)
        return None


def creation_cursor(data: DocumentEventData, client: Any) -> EventCursor | None:
    """For the event of a job's creation: the job store's view of the job right after it (the
    document and its update time, and no event head yet: the first write after the creation
    makes it), so the dispatching transition is written without reading the job first. The
    store's update-time preconditions refuse that write if anything changed the job or made
    the head since; it then reads and decides again. None for any other event."""
    if data.old_value.name or not data.value.update_time:
        return None
    try:
        fields = _written_fields(data, client)
        if fields is None:
            return None
        decode_record(fields)  # a whole job document, or the store reads one
    except (ValidationError, ValueError, TypeError):
        return None
    cursor = EventCursor()
    cursor.remember_job(fields, data.value.update_time)
    cursor.remember_head(int(fields.get("next_seq") or 0), None)
    return cursor
