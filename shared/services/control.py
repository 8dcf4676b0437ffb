"""Internal control operations called by the long-job workflow (through the control function):
mark a job timed out at its deadline, and report a lost worker so the job is retried."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from shared.errors import IllegalTransition, NotFound
from shared.models import JobError, JobStatus
from shared.services.common import utcnow
from shared.services.sweeper import time_out

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)
# Clocks of the workflow engine and ours differ a little; accept a deadline that close.
DEADLINE_SKEW_S = 5.0


class WorkerLost(BaseModel):
    attempt: int
    worker: str | None = None


@dataclass(frozen=True)
class ControlOutcome:
    job_id: str
    status: str
    changed: bool


def expire(adapters: Adapters, job_id: str) -> ControlOutcome:
    changed = time_out(adapters, job_id, utcnow(), grace_s=DEADLINE_SKEW_S) is not None
    job = adapters.jobs.require_job(job_id)
    return ControlOutcome(job_id, job.status.value, changed)


def worker_lost(adapters: Adapters, job_id: str, report: WorkerLost) -> ControlOutcome:
    """The workflow could not reach the worker running `attempt`: unless that worker still
    renews its lease, requeue the job now while attempts remain, else fail it. The requeue
    triggers a fresh dispatch, i.e. a new workflow execution on a (healthy) worker."""
    store = adapters.jobs
    job = store.require_job(job_id)
    lease = store.get_lease(job_id)
    if lease is not None and lease.attempt == report.attempt and lease.expires_at > utcnow():
        # Unreachable is not lost while its heartbeats go on: a draining worker stops serving
        # before its jobs end, and hands them back itself if they do not. If the heartbeats
        # stop, the lease runs out and the sweeper recovers the job.
        log.info(
            "worker unreachable but its lease is live; job left to it",
            extra={"fields": {"job_id": job_id, "worker": lease.worker}},
        )
        return ControlOutcome(job_id, job.status.value, False)

    def same_attempt(current: object) -> None:
        if getattr(current, "attempt", None) != report.attempt:
            raise IllegalTransition(f"job {job_id} is on another attempt")

    try:
        if job.attempt < job.max_attempts:
            job = store.transition(
                job_id,
                JobStatus.QUEUED,
                expected=[JobStatus.RUNNING],
                guard=same_attempt,
                reason="worker lost",
                event_data={"lost_worker": report.worker},
            )
        else:
            job = store.transition(
                job_id,
                JobStatus.FAILED,
                expected=[JobStatus.RUNNING],
                guard=same_attempt,
                fields={
                    "error": JobError(
                        code="worker-lost",
                        message=f"worker lost on attempt {job.attempt}; no attempts left",
                    )
                },
                reason="worker lost after max attempts",
            )
    except (IllegalTransition, NotFound):
        current = store.require_job(job_id)
        return ControlOutcome(job_id, current.status.value, False)
    log.warning("worker lost", extra={"fields": {"job_id": job_id, "status": job.status.value}})
    return ControlOutcome(job_id, job.status.value, True)
