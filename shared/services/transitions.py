"""What a Firestore `document.v1.written` event on `jobs/{id}` asks us to do.

Only transitions matter: a write that leaves the status unchanged (heartbeats, event appends,
cancel flags) needs no action, which is what keeps on_job_written loop-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from google.events.cloud.firestore import DocumentEventData

from shared.models import JobStatus


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
