"""A terminal job-document event carries the whole job: the completion handler decodes it from
the event instead of reading the document again, and gets what a read would have given."""

from __future__ import annotations

from google.cloud.firestore_v1.types import Document as FirestoreDocument
from google.events.cloud.firestore import Document as EventDocument
from google.events.cloud.firestore import DocumentEventData, Value

from shared.adapters import Adapters
from shared.models import Channel, JobRequest, JobResult, JobStatus, WebhookSpec
from shared.services.transitions import written_record


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
