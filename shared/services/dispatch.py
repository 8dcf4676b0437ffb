"""Dispatch of queued jobs (contract: docs/architecture.md "Dispatch contract").

queued → dispatched is a guarded transition, so of two deliveries of the same Firestore event
only one moves the job. What follows is sent once per dispatch transition: a Cloud Task is
named `{job_id}-{seq}` (seq = the dispatched event's), and Cloud Tasks refuses a name used
within the last hour, so a delivery that finds the job still dispatched (a retry after a failed
enqueue, or a duplicate) simply enqueues again and a duplicate is refused. A workflow start,
which nothing deduplicates, is claimed in the effect ledger under
`{job_id}:dispatch-{seq}:enqueue`, started, then marked done. A job left dispatched by a crash
is redispatched by the sweeper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import IllegalTransition, NotFound
from shared.jobstore import EventCursor
from shared.metrics import JOBS_DISPATCHED
from shared.models import JobRecord, JobStatus
from shared.services.common import EffectLedger, once, utcnow
from shared.services.routing import candidate_urls, task_target

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchOutcome:
    status: Literal["dispatched", "skipped"]
    job_id: str
    route: str | None = None
    dispatch_seq: int | None = None
    target: str | None = None
    reason: str | None = None


def task_id_for(job_id: str, dispatch_seq: int) -> str:
    return f"{job_id}-{dispatch_seq}"


def dispatch_key(job_id: str, dispatch_seq: int) -> str:
    return f"{job_id}:dispatch-{dispatch_seq}:enqueue"


def route_for(job: JobRecord, threshold_ms: int) -> Literal["tasks", "workflows"]:
    return "workflows" if job.request.is_long(threshold_ms) else "tasks"


def workflow_argument(
    adapters: Adapters, job: JobRecord, dispatch_seq: int, workers: list[str]
) -> dict[str, Any]:
    s = adapters.settings
    return {
        "job_id": job.job_id,
        "dispatch_seq": dispatch_seq,
        "attempt": job.attempt,
        "workers": workers,
        "control_url": (s.control_url or "").rstrip("/"),
        "deadline_ts": job.deadline_at.timestamp(),
        "max_attempts": job.max_attempts,
        "poll_initial_s": s.workflow_poll_initial_s,
        "poll_max_s": s.workflow_poll_max_s,
        "loss_threshold": s.workflow_loss_threshold,
        "use_oidc": s.workflow_use_oidc,
        # The audience of the workflow's worker calls ("": Workflows' default, the URL called).
        "worker_audience": s.worker_oidc_audience or "",
    }


def dispatch_job(
    adapters: Adapters, job_id: str, cursor: EventCursor | None = None
) -> DispatchOutcome:
    """`cursor`: the job as its creation left it (`transitions.creation_cursor`), to write
    the dispatching transition without reading the job first."""
    store = adapters.jobs
    threshold = adapters.settings.long_job_threshold_ms

    def route_fields(job: JobRecord) -> dict[str, Any]:
        return {"route": route_for(job, threshold)}

    try:
        # No read first: the guarded transition decides on what `cursor` knows, or reads the
        # job once.
        job = store.transition(
            job_id,
            JobStatus.DISPATCHED,
            expected=[JobStatus.QUEUED],
            fields=route_fields,
            event_data=route_fields,
            cursor=cursor,
        )
    except NotFound:
        return DispatchOutcome("skipped", job_id, reason="job not found")
    except IllegalTransition:
        refreshed = store.get_job(job_id)
        if refreshed is None:
            return DispatchOutcome("skipped", job_id, reason="job vanished")
        job = refreshed
    if job.status is not JobStatus.DISPATCHED:
        return DispatchOutcome("skipped", job_id, reason=f"job is {job.status.value}")
    route = job.route  # set by the dispatching transition
    # The dispatched transition appended exactly one event, so its seq is next_seq - 1: stable
    # for every delivery concerning this transition.
    dispatch_seq = job.next_seq - 1
    skipped = DispatchOutcome(
        "skipped", job_id, reason="already enqueued", dispatch_seq=dispatch_seq
    )
    if route == "tasks":
        # Named after the job and dispatch: Cloud Tasks itself refuses a second enqueue.
        target = _send(adapters, job, route, dispatch_seq)
        if target is None:
            return skipped
        return DispatchOutcome(
            "dispatched", job_id, route=route, dispatch_seq=dispatch_seq, target=target
        )
    targets: list[str] = []

    def start() -> None:
        execution = _send(adapters, job, route, dispatch_seq)
        assert execution is not None  # a workflow start always names its execution
        targets.append(execution)

    # A workflow execution has no name to deduplicate on: claim, start, then mark done.
    ledger = EffectLedger(adapters.firestore, adapters.settings)
    if not once(ledger, dispatch_key(job_id, dispatch_seq), start):
        return skipped
    return DispatchOutcome(
        "dispatched", job_id, route=route, dispatch_seq=dispatch_seq, target=targets[0]
    )


def _send(adapters: Adapters, job: JobRecord, route: str, dispatch_seq: int) -> str | None:
    """Start the job's workflow or enqueue its task: the execution or the task's URL, or None
    for a task Cloud Tasks refused as already enqueued."""
    if route == "workflows":
        workers = list(candidate_urls(adapters, job.session_id, now=utcnow()))
        execution = adapters.workflows.start(
            workflow_argument(adapters, job, dispatch_seq, workers)
        )
        JOBS_DISPATCHED.labels(route="workflows", queue="workflows").inc()
        log.info(
            "long job dispatched to workflows",
            extra={"fields": {"job_id": job.job_id, "execution": execution, "seq": dispatch_seq}},
        )
        return execution
    queue = job.request.priority.value
    url = f"{task_target(adapters, job, now=utcnow())}/v1/jobs/{job.job_id}:run"
    created = adapters.tasks.enqueue_http(
        queue,
        url=url,
        body={"job_id": job.job_id, "dispatch_seq": dispatch_seq},
        task_id=task_id_for(job.job_id, dispatch_seq),
        # Every worker URL (pool or a session's worker) is the one Ingress: one audience.
        audience=adapters.settings.worker_oidc_audience,
    )
    if created is None:
        log.info(
            "task already enqueued",
            extra={"fields": {"job_id": job.job_id, "queue": queue, "seq": dispatch_seq}},
        )
        return None
    JOBS_DISPATCHED.labels(route="tasks", queue=queue).inc()
    log.info(
        "job dispatched",
        extra={"fields": {"job_id": job.job_id, "queue": queue, "url": url, "seq": dispatch_seq}},
    )
    return url
