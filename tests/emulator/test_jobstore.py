"""The job store against the real Firestore emulator."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import firestore

from shared.adapters import Adapters
from shared.errors import Conflict, IllegalTransition, NotFound
from shared.jobstore import DocMerge, EventCursor, JobStore, LeaseLost
from shared.lifecycle import LEGAL_TRANSITIONS
from shared.models import (
    Channel,
    EventDraft,
    JobError,
    JobRequest,
    JobResult,
    JobStatus,
    MessageType,
)


@pytest.fixture
def store(isolated_adapters: Adapters) -> JobStore:
    return isolated_adapters.jobs


def _create(store: JobStore, prompt: str = "p", tenant: str = "t1") -> str:
    outcome = store.create_job(JobRequest(prompt=prompt), tenant=tenant, channel=Channel.HTTP)
    return outcome.job.job_id


def _claimed(store: JobStore, cursor: EventCursor | None = None) -> str:
    """A fresh job, running on worker w1 (attempt 1)."""
    job_id = _create(store)
    store.transition(job_id, JobStatus.DISPATCHED)
    store.claim(job_id, worker_id="w1", lease_s=30, cursor=cursor)
    return job_id


def _drive_to(store: JobStore, job_id: str, status: JobStatus) -> None:
    """Walk a fresh job to `status` through legal moves."""
    path = {
        JobStatus.QUEUED: [],
        JobStatus.DISPATCHED: [JobStatus.DISPATCHED],
        JobStatus.RUNNING: [JobStatus.DISPATCHED, JobStatus.RUNNING],
        JobStatus.SUCCEEDED: [JobStatus.DISPATCHED, JobStatus.RUNNING, JobStatus.SUCCEEDED],
        JobStatus.FAILED: [JobStatus.FAILED],
        JobStatus.CANCELLED: [JobStatus.CANCELLED],
        JobStatus.TIMED_OUT: [JobStatus.TIMED_OUT],
    }[status]
    for step in path:
        store.transition(job_id, step)


def test_create_stores_a_queued_job_with_its_first_event(store: JobStore) -> None:
    job_id = _create(store, "write hello.py")
    job = store.require_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.request.prompt == "write hello.py"
    assert job.session_id.startswith("sess_")
    events = store.list_events(job_id)
    assert [e.seq for e in events] == [0]
    assert events[0].data["status"] == "queued"


def test_duplicate_idempotency_key_returns_the_existing_job(store: JobStore) -> None:
    req = JobRequest(prompt="p", idempotency_key="order-17")
    first = store.create_job(req, tenant="t1", channel=Channel.HTTP)
    second = store.create_job(req, tenant="t1", channel=Channel.PUBSUB)
    assert first.created
    assert not second.created
    assert second.job.job_id == first.job.job_id
    assert len(store.list_jobs("t1").jobs) == 1


def test_same_key_different_request_conflicts(store: JobStore) -> None:
    store.create_job(JobRequest(prompt="a", idempotency_key="k"), tenant="t1", channel=Channel.HTTP)
    with pytest.raises(Conflict, match="different request"):
        store.create_job(
            JobRequest(prompt="b", idempotency_key="k"), tenant="t1", channel=Channel.HTTP
        )


def test_same_key_in_another_tenant_is_another_job(store: JobStore) -> None:
    req = JobRequest(prompt="p", idempotency_key="k")
    a = store.create_job(req, tenant="t1", channel=Channel.HTTP)
    b = store.create_job(req, tenant="t2", channel=Channel.HTTP)
    assert a.job.job_id != b.job.job_id


@pytest.mark.parametrize("start", list(JobStatus))
def test_every_transition_is_applied_or_refused_per_the_state_machine(
    store: JobStore, start: JobStatus
) -> None:
    for target in JobStatus:
        job_id = _create(store)
        _drive_to(store, job_id, start)
        before = store.require_job(job_id)
        if target in LEGAL_TRANSITIONS[start]:
            after = store.transition(job_id, target, reason="test")
            assert after.status is target
            assert store.require_job(job_id).status is target
            last = store.list_events(job_id)[-1]
            assert last.data["status"] == target.value
            assert last.data["previous_status"] == start.value
        else:
            with pytest.raises(IllegalTransition):
                store.transition(job_id, target)
            unchanged = store.require_job(job_id)
            assert unchanged.status is start
            assert unchanged.next_seq == before.next_seq  # no event was written either


def test_terminal_transition_emits_a_complete_event(store: JobStore) -> None:
    job_id = _create(store)
    _drive_to(store, job_id, JobStatus.SUCCEEDED)
    assert store.list_events(job_id)[-1].message_type is MessageType.COMPLETE


def test_claim_heartbeat_and_finish_are_guarded_by_the_lease(store: JobStore) -> None:
    job_id = _create(store)
    store.transition(job_id, JobStatus.DISPATCHED)
    job = store.claim(job_id, worker_id="w1", lease_s=30)
    assert job.status is JobStatus.RUNNING
    assert job.attempt == 1
    assert job.lease_owner == "w1"
    with pytest.raises(IllegalTransition):  # a redelivered dispatch cannot claim twice
        store.claim(job_id, worker_id="w2", lease_s=30)
    lease = store.get_lease(job_id)
    assert lease is not None
    assert (lease.worker, lease.attempt) == ("w1", 1)
    store.heartbeat(job_id, worker_id="w1", attempt=1, lease_s=60)
    renewed = store.get_lease(job_id)
    assert renewed is not None
    assert renewed.expires_at > lease.expires_at
    with pytest.raises(LeaseLost):
        store.heartbeat(job_id, worker_id="w2", attempt=1, lease_s=60)
    with pytest.raises(LeaseLost):
        store.finish(job_id, JobStatus.SUCCEEDED, worker_id="w2", attempt=1)
    done = store.finish(
        job_id,
        JobStatus.SUCCEEDED,
        worker_id="w1",
        attempt=1,
        result=JobResult(exit_code=0, final_message="ok", attempt=1),
    )
    assert done.status is JobStatus.SUCCEEDED
    assert done.result is not None
    assert done.result.final_message == "ok"
    assert done.lease_owner is None
    assert store.require_job(job_id).result == done.result
    assert store.get_lease(job_id) is None  # released with the final write


def test_heartbeats_renew_the_lease_without_writing_the_job(isolated_adapters: Adapters) -> None:
    # Every write of a job document fires the job trigger and wakes the job's listeners; a
    # running job heartbeats for as long as it runs.
    store = isolated_adapters.jobs
    cursor = EventCursor()
    job_id = _claimed(store, cursor)
    doc = store._jobs.document(job_id)
    before = doc.get().update_time
    first = store.get_lease(job_id)
    for _ in range(3):
        store.heartbeat(job_id, worker_id="w1", attempt=1, lease_s=30, cursor=cursor)
    assert doc.get().update_time == before
    last = store.get_lease(job_id)
    assert first is not None
    assert last is not None
    assert last.expires_at > first.expires_at


def test_a_heartbeat_reports_a_cancel_request_and_keeps_the_final_write_read_free(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cursor = EventCursor()
    job_id = _claimed(store, cursor)
    store.request_cancel(job_id)  # another writer changes the job behind the cursor
    seen = store.heartbeat(job_id, worker_id="w1", attempt=1, lease_s=30, cursor=cursor)
    assert seen.cancel_requested
    reads: list[str] = []
    monkeypatch.setattr(store, "_read", lambda *a: reads.append("read"))
    done = store.finish(job_id, JobStatus.CANCELLED, worker_id="w1", attempt=1, cursor=cursor)
    assert done.status is JobStatus.CANCELLED
    assert reads == []


def test_a_job_claimed_without_a_lease_document_gets_one_at_its_next_heartbeat(
    store: JobStore,
) -> None:
    # Jobs claimed before leases had their own documents keep running across the change.
    job_id = _claimed(store)
    store.lease_ref(job_id).delete()
    store.heartbeat(job_id, worker_id="w1", attempt=1, lease_s=30)
    lease = store.get_lease(job_id)
    assert lease is not None
    assert lease.worker == "w1"


def test_finish_with_the_workers_cursor_writes_without_reading(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cursor = EventCursor()
    job_id = _claimed(store, cursor)
    store.append_events(job_id, [EventDraft(message_type=MessageType.OUTPUT)], cursor=cursor)
    reads: list[str] = []
    real_call = store._call

    def recording(fn: Callable[[], Any]) -> Any:
        reads.append(getattr(fn, "__name__", ""))
        return real_call(fn)

    monkeypatch.setattr(store, "_call", recording)
    # Another document (a session index) changes in the same write as the job.
    index = store._client.collection("sessions").document(f"s-{job_id}")
    done = store.finish(
        job_id,
        JobStatus.SUCCEEDED,
        worker_id="w1",
        attempt=1,
        cursor=cursor,
        merges=[DocMerge(index, {"turns": firestore.Increment(1), "last_job_id": job_id})],
    )
    assert reads == ["commit"]  # one write, no read
    assert index.get().to_dict() == {"turns": 1, "last_job_id": job_id}
    assert done.status is JobStatus.SUCCEEDED
    stored = store.require_job(job_id)
    assert stored.status is JobStatus.SUCCEEDED
    assert [e.seq for e in store.list_events(job_id)] == [0, 1, 2, 3, 4]  # status, output, done
    assert stored.next_seq == 5


def test_finish_with_a_stale_cursor_decides_on_what_is_stored(store: JobStore) -> None:
    cursor = EventCursor()
    job_id = _claimed(store, cursor)
    # Someone else writes after the worker's last write: a cancel request, then the sweeper
    # hands the job to another worker.
    assert store.request_cancel(job_id).cancel_requested
    tail = [EventDraft(message_type=MessageType.OUTPUT, data={"last": True})]
    finished = store.finish(
        job_id, JobStatus.CANCELLED, worker_id="w1", attempt=1, cursor=cursor, events=tail
    )
    assert finished.cancel_requested  # the fresh read saw the flag the cursor did not
    assert store.require_job(job_id).status is JobStatus.CANCELLED

    # The run's last events still land ahead of the complete event after the re-read.
    events = store.list_events(job_id)
    assert [e.message_type for e in events[-2:]] == [MessageType.OUTPUT, MessageType.COMPLETE]
    assert events[-2].data == {"last": True}
    assert [e.seq for e in events] == list(range(len(events)))

    other = _create(store)
    store.transition(other, JobStatus.DISPATCHED)
    cursor = EventCursor()
    store.claim(other, worker_id="w1", lease_s=30, cursor=cursor)
    store.transition(other, JobStatus.QUEUED, reason="lease expired")
    store.transition(other, JobStatus.DISPATCHED)
    store.claim(other, worker_id="w2", lease_s=30)
    with pytest.raises(LeaseLost):  # the cursor still says w1 holds it; the store says no
        store.finish(other, JobStatus.SUCCEEDED, worker_id="w1", attempt=1, cursor=cursor)
    assert store.require_job(other).lease_owner == "w2"


def test_lease_loss_requeues_and_the_next_claim_is_a_new_attempt(store: JobStore) -> None:
    job_id = _claimed(store)
    store.transition(job_id, JobStatus.QUEUED, reason="lease expired")
    store.transition(job_id, JobStatus.DISPATCHED)
    job = store.claim(job_id, worker_id="w2", lease_s=30)
    assert job.attempt == 2
    with pytest.raises(LeaseLost):  # the first worker's late result is refused
        store.finish(job_id, JobStatus.SUCCEEDED, worker_id="w1", attempt=1)


def test_cancel_before_start_is_immediate_and_flags_running_jobs(store: JobStore) -> None:
    queued = _create(store)
    assert store.request_cancel(queued).status is JobStatus.CANCELLED
    running = _create(store)
    store.transition(running, JobStatus.DISPATCHED)
    store.claim(running, worker_id="w1", lease_s=30)
    flagged = store.request_cancel(running)
    assert flagged.status is JobStatus.RUNNING
    assert flagged.cancel_requested
    # The worker holding the job gets a signal in its mailbox, in the same write.
    (signal,) = [s.to_dict() for s in store.cancel_signals("w1").stream()]
    assert signal["job_id"] == running
    assert signal["attempt"] == 1
    assert signal["expire_at"] > signal["requested_at"]
    assert not list(store.cancel_signals("w2").stream())
    store.finish(
        running,
        JobStatus.CANCELLED,
        worker_id="w1",
        attempt=1,
        error=JobError(code="cancelled", message="stopped"),
    )
    assert store.request_cancel(running).status is JobStatus.CANCELLED  # idempotent


def test_events_append_in_order_in_batches(store: JobStore) -> None:
    job_id = _create(store)
    cursor = EventCursor()
    for batch in range(3):
        drafts = [
            EventDraft(
                message_type=MessageType.OUTPUT,
                data={"n": batch * 10 + i},
                codex={"type": "item.completed", "nested": [[1, 2]]},
            )
            for i in range(10)
        ]
        store.append_events(job_id, drafts, cursor=cursor)
    events = store.list_events(job_id, after_seq=0)
    assert [e.data["n"] for e in events] == [b * 10 + i for b in range(3) for i in range(10)]
    assert [e.seq for e in events] == list(range(1, 31))
    assert events[0].codex == {"type": "item.completed", "nested": [[1, 2]]}
    assert [e.seq for e in store.list_events(job_id, after_seq=25)] == [26, 27, 28, 29, 30]


def test_event_appends_leave_the_job_document_alone(
    store: JobStore, isolated_adapters: Adapters
) -> None:
    """A chatty job must not rewrite its job document per batch: that document's writes fire
    the dispatch/completion trigger and wake every listener on the job."""
    cursor = EventCursor()
    job_id = _claimed(store, cursor)
    doc = isolated_adapters.jobs._jobs.document(job_id)
    before = doc.get().update_time
    for i in range(3):
        store.append_events(
            job_id, [EventDraft(message_type=MessageType.OUTPUT, data={"n": i})], cursor=cursor
        )
    store.append_events(job_id, [EventDraft(message_type=MessageType.OUTPUT)])  # reads, same rule
    assert doc.get().update_time == before
    # The next state change numbers its event after them, with or without the cursor.
    store.heartbeat(job_id, worker_id="w1", attempt=1, lease_s=30)
    done = store.finish(job_id, JobStatus.SUCCEEDED, worker_id="w1", attempt=1, cursor=cursor)
    assert done.next_seq == 8
    events = store.list_events(job_id)
    assert [e.seq for e in events] == list(range(8))
    assert events[-1].message_type is MessageType.COMPLETE


def test_concurrent_writers_lose_no_events(isolated_adapters: Adapters) -> None:
    adapters = isolated_adapters
    store = adapters.jobs
    job_id = _create(store)
    writers, per_writer = 4, 15
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        own = JobStore(adapters.firestore, adapters.settings)
        cursor = EventCursor()
        try:
            for i in range(per_writer):
                own.append_events(
                    job_id,
                    [EventDraft(message_type=MessageType.OUTPUT, data={"w": writer, "i": i})],
                    cursor=cursor,
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    # A state change racing the appenders must neither be lost nor lose events.
    store.transition(job_id, JobStatus.DISPATCHED)
    for t in threads:
        t.join()
    assert not errors
    events = store.list_events(job_id)
    assert [e.seq for e in events] == list(range(len(events)))
    written = [(e.data["w"], e.data["i"]) for e in events if "w" in e.data]
    assert sorted(written) == [(w, i) for w in range(writers) for i in range(per_writer)]
    for w in range(writers):  # each writer's own events stay in its order
        assert [i for ww, i in written if ww == w] == list(range(per_writer))
    assert store.require_job(job_id).status is JobStatus.DISPATCHED


def test_list_by_tenant_pages_with_cursors_and_filters(store: JobStore) -> None:
    ids = [_create(store, f"p{i}") for i in range(7)]
    _create(store, "other", tenant="t2")
    store.transition(ids[0], JobStatus.CANCELLED)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_jobs("t1", limit=3, cursor=cursor)
        seen += [j.job_id for j in page.jobs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)
    assert seen == list(reversed(ids))  # newest first
    cancelled = store.list_jobs("t1", status=JobStatus.CANCELLED)
    assert [j.job_id for j in cancelled.jobs] == [ids[0]]
    assert store.list_jobs("t1", channel=Channel.PUBSUB).jobs == []
    with pytest.raises(NotFound):  # a cursor from another tenant's listing is refused
        store.list_jobs("t2", cursor=page.next_cursor or _cursor_of(ids[1]))


def _cursor_of(job_id: str) -> str:
    import base64

    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def test_tenant_scoped_reads_hide_other_tenants_jobs(store: JobStore) -> None:
    job_id = _create(store, tenant="t1")
    with pytest.raises(NotFound):
        store.require_job(job_id, tenant="t2")


def test_sweeper_query_finds_expired_leases(store: JobStore) -> None:
    job_id = _create(store)
    store.transition(job_id, JobStatus.DISPATCHED)
    store.claim(job_id, worker_id="w1", lease_s=5)
    soon = datetime.now(UTC) + timedelta(seconds=10)
    found = store.expired_leases(soon)
    assert [(lease.job_id, lease.worker, lease.attempt) for lease in found] == [(job_id, "w1", 1)]
    assert store.expired_leases(datetime.now(UTC) - timedelta(seconds=60)) == []
