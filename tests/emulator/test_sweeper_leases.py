"""The sweeper's expired-lease recovery against the real Firestore emulator: leases live in
their own documents, renewed by heartbeats and released with every way out of `running`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from shared.adapters import Adapters
from shared.models import Channel, JobRequest, JobStatus
from shared.services.control import WorkerLost, worker_lost
from shared.services.sweeper import requeue_or_fail_expired, sweep


def _running(adapters: Adapters, *, lease_s: int = 5, max_attempts: int = 3) -> str:
    store = adapters.jobs
    request = JobRequest(prompt="p", max_attempts=max_attempts)
    job_id = store.create_job(request, tenant="t1", channel=Channel.HTTP).job.job_id
    store.transition(job_id, JobStatus.DISPATCHED)
    store.claim(job_id, worker_id="w1", lease_s=lease_s)
    return job_id


def _later(seconds: int = 60) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_an_expired_lease_requeues_the_job_and_is_released(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    job_id = _running(isolated_adapters)
    (lease,) = store.expired_leases(_later())
    assert requeue_or_fail_expired(isolated_adapters, lease, _later()) == "requeued"
    job = store.require_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.lease_owner is None
    assert store.get_lease(job_id) is None
    assert store.expired_leases(_later()) == []


def test_an_expired_lease_on_the_last_attempt_fails_the_job(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    job_id = _running(isolated_adapters, max_attempts=1)
    (lease,) = store.expired_leases(_later())
    assert requeue_or_fail_expired(isolated_adapters, lease, _later()) == "failed"
    job = store.require_job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code == "worker-lost"
    assert store.get_lease(job_id) is None


def test_a_heartbeat_after_the_sweepers_query_keeps_the_job(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    job_id = _running(isolated_adapters)
    now = _later()
    (lease,) = store.expired_leases(now)
    # The worker renews the lease between the sweeper's query and its write.
    store.heartbeat(job_id, worker_id="w1", attempt=1, lease_s=3600)
    assert requeue_or_fail_expired(isolated_adapters, lease, now) is None
    assert store.require_job(job_id).status is JobStatus.RUNNING
    renewed = store.get_lease(job_id)
    assert renewed is not None
    assert renewed.expires_at > now


def test_a_lease_no_running_attempt_holds_is_dropped(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    job_id = _running(isolated_adapters)
    (lease,) = store.expired_leases(_later())
    # Written back by hand after the job finished: no attempt holds it any more.
    store.finish(job_id, JobStatus.SUCCEEDED, worker_id="w1", attempt=1)
    store.lease_ref(job_id).set(
        {"job_id": job_id, "worker": "w1", "attempt": 1, "expires_at": lease.expires_at}
    )
    (stale,) = store.expired_leases(_later())
    assert requeue_or_fail_expired(isolated_adapters, stale, _later()) is None
    assert store.get_lease(job_id) is None
    assert store.require_job(job_id).status is JobStatus.SUCCEEDED


def test_a_sweep_counts_the_lost_job_as_stuck_but_not_a_leftover_lease(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    lost = _running(isolated_adapters)
    finished = _running(isolated_adapters)
    (lease,) = [x for x in store.expired_leases(_later()) if x.job_id == finished]
    store.finish(finished, JobStatus.SUCCEEDED, worker_id="w1", attempt=1)
    store.lease_ref(finished).set(
        {"job_id": finished, "worker": "w1", "attempt": 1, "expires_at": lease.expires_at}
    )
    summary = sweep(isolated_adapters, now=_later(30))
    assert summary.stuck == 1
    assert summary.requeued == [lost]
    assert REGISTRY.get_sample_value("codex_stuck_jobs") == 1
    assert store.require_job(lost).status is JobStatus.QUEUED
    assert store.get_lease(finished) is None


def test_a_cancelled_job_whose_worker_died_ends_cancelled_not_requeued(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id = _running(isolated_adapters)
    # The cancel only flags a running job for its worker, which is already gone.
    store.request_cancel(job_id)
    (lease,) = store.expired_leases(_later())
    assert requeue_or_fail_expired(isolated_adapters, lease, _later()) == "cancelled"
    job = store.require_job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.error is not None
    assert job.error.code == "cancelled"
    assert store.get_lease(job_id) is None
    events = store.list_events(job_id)
    assert "cancelled as requested" in str(events[-1].data)


def test_a_flagged_job_left_dispatched_or_queued_gets_cancelled(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    jobs = isolated_adapters.firestore.collection(
        isolated_adapters.settings.topology.firestore.jobs_collection
    )
    # Jobs flagged while running, then put back before cancel requests were honoured on the
    # way to the queue (as stored by earlier releases): one left dispatched, one queued.
    stale, queued = _running(isolated_adapters), _running(isolated_adapters)
    for job_id in (stale, queued):
        store.request_cancel(job_id)
    jobs.document(stale).update(
        {"status": JobStatus.DISPATCHED.value, "dispatched_at": _later(-3600)}
    )
    jobs.document(queued).update({"status": JobStatus.QUEUED.value})
    summary = sweep(isolated_adapters, now=_later(0))
    assert stale in summary.cancelled
    assert store.require_job(stale).status is JobStatus.CANCELLED
    # Cancelling again settles a flagged job that is not running (it used to be a no-op).
    assert store.request_cancel(queued).status is JobStatus.CANCELLED


def test_a_worker_the_workflow_cannot_reach_keeps_its_job_while_its_lease_is_live(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    # A draining worker: no longer serving the workflow's polls, still heartbeating.
    job_id = _running(isolated_adapters, lease_s=3600)
    report = WorkerLost(attempt=1, worker="w1")
    outcome = worker_lost(isolated_adapters, job_id, report)
    assert (outcome.status, outcome.changed) == ("running", False)
    assert store.require_job(job_id).status is JobStatus.RUNNING

    # Its heartbeats stopped: the lease ran out, so the report requeues the job at once.
    stale = _running(isolated_adapters, lease_s=0)
    outcome = worker_lost(isolated_adapters, stale, report)
    assert (outcome.status, outcome.changed) == ("queued", True)
    assert store.get_lease(stale) is None


def test_a_job_document_no_release_can_read_does_not_stop_the_sweep(
    isolated_adapters: Adapters,
) -> None:
    jobs = isolated_adapters.firestore.collection(
        isolated_adapters.settings.topology.firestore.jobs_collection
    )
    # Written by hand: no tenant, no request. Every query of stale dispatches returns it.
    jobs.document("poison").set({"status": "dispatched", "dispatched_at": _later(-3600)})
    stale = _running(isolated_adapters)
    jobs.document(stale).update(
        {"status": JobStatus.DISPATCHED.value, "dispatched_at": _later(-3600)}
    )
    summary = sweep(isolated_adapters, now=_later(0))
    assert stale in summary.redispatched
