"""Terminal side effects (contract: docs/architecture.md "Terminal side effects").

On a transition into a terminal state: publish to codex-results, call the webhook, write the
summary to the results bucket — each once per transition, keyed
`processed_events/{job_id}:{status}:effects` in the effect ledger: one marker per transition
claims the effects, lists each one once done, and is closed when all are.
Each effect is idempotent on its own as well, covering a crash between effect and `done`:
the results object is written with `if_generation_match=0`; a results message carries a stable
`dedup_id` attribute; a webhook carries a stable `X-Codex-Delivery` id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import Conflict
from shared.metrics import JOBS_FINISHED
from shared.models import Channel, JobRecord
from shared.services.common import EffectLedger
from shared.services.uploads import result_object_name
from shared.services.webhooks import deliver

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def results_object_for(job: JobRecord) -> str:
    if job.channel is Channel.UPLOAD and job.source.get("object"):
        return result_object_name(str(job.source["object"]))
    return f"jobs/{job.job_id}.json"


def build_summary(adapters: Adapters, job: JobRecord) -> dict[str, Any]:
    """The result summary shared by the results topic, the webhook and the results bucket
    (docs/contracts/results-topic.md). Deterministic for a terminal job."""
    outputs = adapters.settings.topology.bucket("outputs")
    return {
        "job_id": job.job_id,
        "tenant": job.tenant,
        "status": job.status.value,
        "channel": job.channel.value,
        "priority": job.request.priority.value,
        "session_id": job.session_id,
        "attempt": job.attempt,
        "metadata": job.request.metadata,
        "result": job.result.model_dump(mode="json") if job.result else None,
        "error": job.error.model_dump(mode="json") if job.error else None,
        "artifacts_prefix": f"gs://{outputs}/{job.job_id}/",
        "results_object": f"gs://{adapters.settings.topology.bucket('results')}/"
        f"{results_object_for(job)}",
        "source": job.source,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


@dataclass
class CompletionOutcome:
    job_id: str
    status: str
    performed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def effects_key(job_id: str, status: str) -> str:
    return f"{job_id}:{status}:effects"


def complete_job(
    adapters: Adapters, job_id: str, written: JobRecord | None = None
) -> CompletionOutcome:
    """Run the terminal side effects for the job's (terminal) state, each at most once.

    `written` is the job as the terminal write left it, when the triggering event carried it
    (otherwise it is read). Effects are attempted independently; if any failed retryably, the
    first such error is raised after the others ran, so the event is redelivered and only the
    missing ones rerun.
    """
    job = written if written is not None and written.job_id == job_id else None
    job = job or adapters.jobs.get_job(job_id)
    if job is None or not job.status.terminal:
        return CompletionOutcome(job_id, job.status.value if job else "missing")
    status = job.status.value
    summary = build_summary(adapters, job)
    ledger = EffectLedger(adapters.firestore, adapters.settings)
    actions: dict[str, Callable[[], object]] = {
        "results_topic": lambda: _publish(adapters, job, summary),
        "webhook": lambda: deliver(adapters, job, summary),
        "results_bucket": lambda: _write_summary(adapters, job, summary),
    }
    if job.request.webhook is None:
        del actions["webhook"]
    group = ledger.run_group(effects_key(job_id, status), actions)
    outcome = CompletionOutcome(job_id, status, group.performed, group.skipped)
    if "results_topic" in outcome.performed:
        JOBS_FINISHED.labels(status=status, channel=job.channel.value).inc()
    if group.failure is not None:
        raise group.failure
    return outcome


def _publish(adapters: Adapters, job: JobRecord, summary: dict[str, Any]) -> str:
    attributes = {
        "job_id": job.job_id,
        "status": job.status.value,
        "tenant": job.tenant,
        "channel": job.channel.value,
        "dedup_id": f"{job.job_id}:{job.status.value}",
    }
    return adapters.publisher.publish_json("results", summary, attributes)


def _write_summary(adapters: Adapters, job: JobRecord, summary: dict[str, Any]) -> None:
    bucket = adapters.storage.bucket_name("results")
    name = results_object_for(job)
    try:
        adapters.storage.put(
            bucket,
            name,
            json.dumps(summary, indent=2, sort_keys=True).encode(),
            content_type="application/json",
            if_generation_match=0,
            metadata={"job_id": job.job_id, "status": job.status.value},
        )
    except Conflict:
        # Written by an earlier delivery for this job — or, for an upload object name reused by
        # another version (a new job), by that version's job: replaced only by a newer version's.
        existing = json.loads(adapters.storage.get(bucket, name))
        if existing.get("job_id") == job.job_id:
            log.info("results summary already written", extra={"fields": {"object": name}})
            return
        if _upload_generation(existing.get("source")) > _upload_generation(job.source):
            log.info(
                "results summary of a newer upload kept",
                extra={"fields": {"object": name, "job_id": job.job_id}},
            )
            return
        adapters.storage.put(
            bucket,
            name,
            json.dumps(summary, indent=2, sort_keys=True).encode(),
            content_type="application/json",
            metadata={"job_id": job.job_id, "status": job.status.value},
        )


def _upload_generation(source: object) -> int:
    """The uploaded object's generation a job came from (0 when unknown)."""
    if not isinstance(source, dict):
        return 0
    try:
        return int(source.get("generation") or 0)
    except (TypeError, ValueError):
        return 0
