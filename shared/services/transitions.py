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

from shared.jobstore import decode_record
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


def written_record(data: DocumentEventData, client: Any) -> JobRecord | None:
    """The job as the event's write left it, or None when the event does not carry a whole job
    document (the caller then reads it). Saves the read a handler would otherwise make of a
    document it was just sent.

    The event's `Document` and Firestore's own have the same wire format, so the Firestore
    client's decoding applies (timestamps, maps, references to `client`)."""
    if not data.value.name:
        return None
    try:
        document = FirestoreDocument.deserialize(EventDocument.serialize(data.value))
        fields = firestore_helpers.decode_dict(document.fields, client)
        return decode_record(fields) if isinstance(fields, dict) else None
    except (ValidationError, ValueError, TypeError) as exc:
        log.info("event carries no whole job document; reading it: %s", type(exc).__name__)
        return None
