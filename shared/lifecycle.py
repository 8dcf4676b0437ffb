"""The job state machine, owned by this one module.

queued → dispatched → running → succeeded | failed | cancelled | timed_out
running → queued      when a worker's lease expires and attempts remain
dispatched → queued   when a dispatch was lost (never started) and is retried
queued/dispatched → cancelled | failed | timed_out   (cancel, permanent dispatch error, deadline)
Terminal states never change.
"""

from __future__ import annotations

from shared.errors import IllegalTransition
from shared.models import TERMINAL_STATUSES, JobStatus

S = JobStatus

LEGAL_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.DISPATCHED, S.CANCELLED, S.FAILED, S.TIMED_OUT}),
    S.DISPATCHED: frozenset({S.RUNNING, S.QUEUED, S.CANCELLED, S.FAILED, S.TIMED_OUT}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.QUEUED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.TIMED_OUT: frozenset(),
}


def is_legal(current: JobStatus, target: JobStatus) -> bool:
    return target in LEGAL_TRANSITIONS[current]


def check_transition(job_id: str, current: JobStatus, target: JobStatus) -> None:
    """Raise IllegalTransition unless current → target is a legal move."""
    if not is_legal(current, target):
        raise IllegalTransition(
            f"job {job_id} cannot move from {current.value} to {target.value}",
            extra={"job_id": job_id, "from": current.value, "to": target.value},
        )


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL_STATUSES
