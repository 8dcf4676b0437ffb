"""A job-document event carries the whole job: the completion handler decodes it from the event
instead of reading the document again, and gets what a read would have given; the dispatcher
writes a new job's dispatching transition from its creation event without a read."""

from __future__ import annotations

import pytest
from google.cloud.firestore_v1.types import Document as FirestoreDocument
from google.events.cloud.firestore import Document as EventDocument
from google.events.cloud.firestore import DocumentEventData, Value

from shared.adapters import Adapters
from shared.errors import IllegalTransition
from shared.jobstore import EventCursor
from shared.models import (
    Channel,
    EventDraft,
    JobRequest,
    JobResult,
    JobStatus,
    MessageType,
    WebhookSpec,
)
from shared.services.transitions import creation_cursor, written_record


def _event_of(adapters: Adapters, job_id: str) -> DocumentEventData:
    """The event Firestore would send for the document as stored now."""
    ref = adapters.firestore.collection(adapters.settings.topology.firestore.jobs_collection)
    name = ref.document(job_id)._document_path
    stored = adapters.firestore._firestore_api.get_document(request={"name": name})
    return DocumentEventData(value=EventDocument.deserialize(FirestoreDocument.serialize(stored)))


def test_a_finished_job_decodes_from_its_event_exactly_as_a_read_gives_it(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    request = JobRequest(
        prompt="p",
        webhook=WebhookSpec(url="https://hooks.example.com/x", secret="s" * 24),
        metadata={"team": "a"},
        output_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
    )
    job_id = store.create_job(request, tenant="t1", channel=Channel.PUBSUB).job.job_id
    store.transition(job_id, JobStatus.DISPATCHED)
    running = store.claim(job_id, worker_id="w1", lease_s=30)
    store.finish(
        job_id,
        JobStatus.SUCCEEDED,
        worker_id="w1",
        attempt=running.attempt,
        result=JobResult(exit_code=0, final_message="done", attempt=running.attempt),
    )

    decoded = written_record(_event_of(isolated_adapters, job_id), isolated_adapters.firestore)

    assert decoded is not None
    assert decoded == store.get_job(job_id)
    assert decoded.status is JobStatus.SUCCEEDED
    assert decoded.result is not None
    assert decoded.result.final_message == "done"
    assert decoded.request.webhook is not None


def test_an_event_without_the_whole_document_asks_for_a_read(
    isolated_adapters: Adapters,
) -> None:
    name = "projects/p/databases/(default)/documents/jobs/j1"
    partial = DocumentEventData(
        value=EventDocument(name=name, fields={"status": Value(string_value="succeeded")})
    )
    assert written_record(partial, isolated_adapters.firestore) is None
    assert written_record(DocumentEventData(), isolated_adapters.firestore) is None


def test_a_creation_event_dispatches_the_job_without_reading_it(
    isolated_adapters: Adapters, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = isolated_adapters.jobs
    job_id = store.create_job(
        JobRequest(prompt="p"), tenant="t1", channel=Channel.PUBSUB
    ).job.job_id
    cursor = creation_cursor(_event_of(isolated_adapters, job_id), isolated_adapters.firestore)
    assert cursor is not None
    reads: list[str] = []
    read = store._read

    def counted(job: str, state: EventCursor) -> None:
        reads.append(job)
        read(job, state)

    monkeypatch.setattr(store, "_read", counted)

    dispatched = store.transition(
        job_id, JobStatus.DISPATCHED, expected=[JobStatus.QUEUED], cursor=cursor
    )

    assert reads == []
    assert dispatched == store.get_job(job_id)
    assert dispatched.status is JobStatus.DISPATCHED
    assert [e.seq for e in store.list_events(job_id)] == [0, 1]


def test_a_creation_event_gone_stale_is_decided_on_a_fresh_read(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id = store.create_job(
        JobRequest(prompt="p"), tenant="t1", channel=Channel.PUBSUB
    ).job.job_id
    event = _event_of(isolated_adapters, job_id)
    # After the creation, before the dispatcher: an event append makes the head, then a
    # cancel ends the job.
    store.append_events(job_id, [EventDraft(message_type=MessageType.PROGRESS, data={"note": "x"})])
    store.request_cancel(job_id)
    cursor = creation_cursor(event, isolated_adapters.firestore)
    assert cursor is not None

    with pytest.raises(IllegalTransition):
        store.transition(job_id, JobStatus.DISPATCHED, expected=[JobStatus.QUEUED], cursor=cursor)

    assert store.require_job(job_id).status is JobStatus.CANCELLED
    seqs = [e.seq for e in store.list_events(job_id)]
    assert seqs == list(range(len(seqs)))  # no event written twice or skipped


def test_only_a_creation_event_gives_a_cursor(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    job_id = store.create_job(
        JobRequest(prompt="p"), tenant="t1", channel=Channel.PUBSUB
    ).job.job_id
    created = _event_of(isolated_adapters, job_id)
    store.transition(job_id, JobStatus.DISPATCHED)
    later = _event_of(isolated_adapters, job_id)
    later.old_value = created.value

    assert creation_cursor(later, isolated_adapters.firestore) is None
    assert creation_cursor(DocumentEventData(), isolated_adapters.firestore) is None
