"""The sweeper (Cloud Scheduler → HTTP function): recovers jobs nobody is moving.

- running with an expired lease → queued while attempts remain, else failed (cancelled
  instead of queued when a cancel was requested: see `JobStore.transition`);
- queued but never dispatched for `dispatch_stale_seconds` (the event that should have
  dispatched it was lost) → dispatched now, by the same guarded dispatch the trigger runs;
- dispatched but never started for `dispatch_stale_seconds` → queued (re-triggers dispatch);
- non-terminal past `deadline_at` → timed_out (a running one also gets `cancel_requested`, and
  its worker is asked to stop).
Every change is a guarded transition that re-checks the condition on the fresh document, so
concurrent sweeps (or a racing worker heartbeat) cannot double-apply or undo progress. Leases
live in their own documents (`leases/{job_id}`), which the expired-lease query reads.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import httpx
from google.auth.exceptions import GoogleAuthError

from shared.errors import CodexCloudError, IllegalTransition, NotFound
from shared.jobstore import DocDelete, DocWrite, Lease
from shared.log import LOG_METRIC_FIELD, LOG_METRIC_SWEEP
from shared.metrics import STUCK_JOBS, SWEEPER_ACTIONS
from shared.models import JobError, JobRecord, JobStatus
from shared.oidc import id_token_headers
from shared.services.common import utcnow
from shared.services.dispatch import dispatch_job
from shared.services.routing import worker_url_for

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)
BATCH = 200
NON_TERMINAL = (JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING)
Action = Literal["requeued", "failed", "redispatched", "timed_out", "cancelled"]


@dataclass
class SweepSummary:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    redispatched: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    # Jobs that would have gone back to the queue but had a cancel request (JobStore.transition).
    cancelled: list[str] = field(default_factory=list)
    stuck: int = 0
    errors: int = 0

    def record(self, action: Action, job_id: str) -> None:
        getattr(self, action).append(job_id)
        SWEEPER_ACTIONS.labels(action=action).inc()

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def requeue_or_fail_expired(adapters: Adapters, lease: Lease, now: datetime) -> Action | None:
    """Recover the running job whose lease expired: back to the queue while attempts remain,
    else failed. The lease is re-read inside the guarded write and released with it only if it
    is unchanged, so a heartbeat that renewed it in between wins."""
    store = adapters.jobs
    job = store.get_job(lease.job_id)
    if job is None or job.status is not JobStatus.RUNNING or job.attempt != lease.attempt:
        # No running attempt holds it (a release that never ran): nothing to recover.
        store.drop_lease(lease)
        return None

    def same_attempt(current: JobRecord) -> None:
        if current.attempt != lease.attempt or current.lease_owner != lease.worker:
            raise IllegalTransition(f"job {current.job_id} moved to another attempt")

    def release_if_still_expired(current: JobRecord) -> list[DocWrite]:
        fresh = store.get_lease(current.job_id)
        if fresh is None or fresh.attempt != lease.attempt or fresh.expires_at >= now:
            raise IllegalTransition(f"job {current.job_id} lease was renewed")
        return [DocDelete(store.lease_ref(current.job_id), fresh.update_time)]

    try:
        if job.attempt < job.max_attempts:
            after = store.transition(
                job.job_id,
                JobStatus.QUEUED,
                expected=[JobStatus.RUNNING],
                guard=same_attempt,
                merges=release_if_still_expired,
                reason="lease expired",
                event_data={"lost_worker": lease.worker},
            )
            return "requeued" if after.status is JobStatus.QUEUED else "cancelled"
        store.transition(
            job.job_id,
            JobStatus.FAILED,
            expected=[JobStatus.RUNNING],
            guard=same_attempt,
            merges=release_if_still_expired,
            fields={
                "error": JobError(
                    code="worker-lost",
                    message=f"worker lease expired on attempt {job.attempt} of "
                    f"{job.max_attempts}; no attempts left",
                    retryable=False,
                )
            },
            reason="lease expired after max attempts",
        )
        return "failed"
    except (IllegalTransition, NotFound):
        return None


def redispatch_stale(adapters: Adapters, job: JobRecord, before: datetime) -> Action | None:
    def still_stale(current: JobRecord) -> None:
        if current.dispatched_at is None or current.dispatched_at >= before:
            raise IllegalTransition(f"job {current.job_id} was dispatched again recently")

    try:
        after = adapters.jobs.transition(
            job.job_id,
            JobStatus.QUEUED,
            expected=[JobStatus.DISPATCHED],
            guard=still_stale,
            reason="dispatch lost (never started)",
        )
    except (IllegalTransition, NotFound):
        return None
    return "redispatched" if after.status is JobStatus.QUEUED else "cancelled"


def time_out(
    adapters: Adapters, job_id: str, now: datetime, *, grace_s: float = 0.0
) -> Action | None:
    """Move a non-terminal job past its deadline to timed_out (a running job is also flagged
    `cancel_requested`, and its worker asked to stop, best effort)."""
    owners: list[str | None] = []

    def overdue(current: JobRecord) -> None:
        if current.deadline_at > now + timedelta(seconds=grace_s):
            raise IllegalTransition(f"job {current.job_id} is not past its deadline")
        owners.append(current.lease_owner if current.status is JobStatus.RUNNING else None)

    try:
        adapters.jobs.transition(
            job_id,
            JobStatus.TIMED_OUT,
            expected=list(NON_TERMINAL),
            guard=overdue,
            fields={
                "cancel_requested": True,
                "error": JobError(code="timed-out", message="the job's deadline passed"),
            },
            reason="deadline exceeded",
            # The worker holding it hears this through its cancel mailbox right away.
            merges=lambda job: adapters.jobs.cancel_signal(job, "deadline exceeded"),
        )
    except (IllegalTransition, NotFound):
        return None
    if owners and owners[-1]:
        _ask_worker_to_stop(adapters, job_id, owners[-1])
    return "timed_out"


def _ask_worker_to_stop(adapters: Adapters, job_id: str, owner: str) -> None:
    # Best effort besides the mailbox signal written with the transition (and the heartbeat,
    # which reads `cancel_requested`): a worker whose listener is down stops now too.
    url = worker_url_for(adapters, owner)
    if not url:
        return
    try:
        # The worker accepts only Google-signed ID tokens of its allowed callers (the sweeper's
        # service account is one) when CODEX_CLOUD_WORKER_OIDC_AUDIENCE is set.
        headers = id_token_headers(adapters.settings.worker_oidc_audience)
        resp = httpx.post(
            f"{url}/v1/jobs/{job_id}:cancel",
            json={"reason": "deadline"},
            headers=headers,
            timeout=3.0,
        )
        resp.raise_for_status()  # a refused call (401/403: misconfigured auth) is logged too
    except (httpx.HTTPError, GoogleAuthError) as exc:
        log.info(
            "worker cancel call failed", extra={"fields": {"job_id": job_id, "error": str(exc)}}
        )


def sweep(adapters: Adapters, *, now: datetime | None = None) -> SweepSummary:
    now = now or utcnow()
    store = adapters.jobs
    summary = SweepSummary()
    stuck: set[str] = set()

    for status in NON_TERMINAL:
        for job in store.query_by_status(status, field_name="deadline_at", before=now, limit=BATCH):
            stuck.add(job.job_id)
            action = time_out(adapters, job.job_id, now)
            if action:
                summary.record(action, job.job_id)

    for lease in store.expired_leases(now, limit=BATCH):
        action = requeue_or_fail_expired(adapters, lease, now)
        # A lease renewed since the query, or left behind by a finished job, is no stuck job.
        if action:
            stuck.add(lease.job_id)
            summary.record(action, lease.job_id)

    before = now - timedelta(seconds=adapters.settings.dispatch_stale_seconds)
    for job in store.query_by_status(
        JobStatus.QUEUED, field_name="updated_at", before=before, limit=BATCH
    ):
        stuck.add(job.job_id)
        try:
            outcome = dispatch_job(adapters, job.job_id)
        except CodexCloudError as exc:
            summary.errors += 1
            log.warning(
                "dispatch of a stale queued job failed",
                extra={"fields": {"job_id": job.job_id, "error": exc.detail}},
            )
            continue
        if outcome.status == "dispatched":
            summary.record("redispatched", job.job_id)

    for job in store.query_by_status(
        JobStatus.DISPATCHED, field_name="dispatched_at", before=before, limit=BATCH
    ):
        stuck.add(job.job_id)
        action = redispatch_stale(adapters, job, before)
        if action:
            summary.record(action, job.job_id)

    summary.stuck = len(stuck)
    STUCK_JOBS.set(len(stuck))
    # Logged on every sweep, zero included: the StuckJobs alert is a log-based metric on this
    # line (nothing scrapes the function's Prometheus gauge), and a sweep without a line would
    # read as missing data rather than as "no stuck jobs".
    log.info(
        "sweep finished",
        extra={"fields": {LOG_METRIC_FIELD: LOG_METRIC_SWEEP, **summary.as_dict()}},
    )
    return summary
