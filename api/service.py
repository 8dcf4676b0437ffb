"""What the API does, as plain functions: no HTTP types in here.

Route handlers decode the request, call one of these, and map the result (or the raised
`shared.errors` exception) onto an HTTP response.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from api.activejobs import ActiveJobGauge
from shared import metrics
from shared.adapters.storage import BlobInfo, BlobStore
from shared.errors import Conflict, InvalidInput, NotFound
from shared.jobstore import JobStore, job_id_for_key
from shared.jobstore_async import AsyncJobWriter
from shared.models import (
    Channel,
    JobRecord,
    JobRequest,
    JobStatus,
    Mode,
    is_safe_id,
)
from shared.services.uploads import check_workspace_access
from shared.settings import Settings


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str
    trace_id: str | None = None


@dataclass(frozen=True)
class Submission:
    job: JobRecord
    created: bool
    # Only when this call generated the webhook secret (returned once, never again).
    webhook_secret: str | None = None


def _check_webhook_target(url: str, allow_private: bool) -> None:
    try:
        host = (urlsplit(url).hostname or "").strip("[]").lower()
    except ValueError:
        # The model refuses such URLs already; this keeps a request built another way a 422.
        raise InvalidInput(
            "webhook URL is not a valid URL",
            errors=[{"loc": ["body", "webhook", "url"], "msg": "must have a valid host"}],
        ) from None
    if allow_private:
        return
    private = host in ("localhost", "metadata.google.internal") or host.endswith(".localhost")
    try:
        address = ipaddress.ip_address(host)
        private = private or not address.is_global
    except ValueError:
        pass
    if private:
        raise InvalidInput(
            "webhook URL points at a private address",
            errors=[{"loc": ["body", "webhook", "url"], "msg": "must be a public address"}],
        )


async def submit_job(
    writer: AsyncJobWriter,
    store: JobStore,
    active_jobs: ActiveJobGauge,
    settings: Settings,
    request: JobRequest,
    *,
    caller: Caller,
    max_active_jobs: int,
    idempotency_key: str | None = None,
) -> Submission:
    """Create a queued job for the caller's tenant, or find the one an idempotency key made.

    The active-jobs cap is checked before creating (a soft cap, see `ActiveJobGauge`). Runs on
    the event loop: blocking work (a key's first count) goes to a worker thread.
    """
    key = idempotency_key or request.idempotency_key
    if key:
        request = request.model_copy(update={"idempotency_key": key})
        existing = await writer.get_job(job_id_for_key(caller.tenant, key))
        if existing is not None:
            if existing.request_hash != request.fingerprint():
                raise Conflict(
                    "idempotency key already used with a different request",
                    extra={"job_id": existing.job_id},
                )
            return Submission(existing, created=False)
    if request.webhook is not None:
        _check_webhook_target(request.webhook.url, settings.webhook_allow_private)
    check_workspace_access(request, caller.tenant, settings)
    if not active_jobs.try_admit(caller.tenant, max_active_jobs):
        # Starlette's thread pool, not the loop's small default one: a burst waiting here on
        # one tenant's count must not starve other blocking work.
        await run_in_threadpool(active_jobs.admit, caller.tenant, max_active_jobs)
    try:
        generated: str | None = None
        secret: str | None = None
        if request.webhook is not None:
            secret = request.webhook.secret
            if secret is None:
                secret = generated = secrets.token_urlsafe(32)
            # The secret lives in its own field only; the stored request never repeats it.
            request = request.model_copy(
                update={"webhook": request.webhook.model_copy(update={"secret": None})}
            )
        source = {"key_id": caller.key_id}
        if caller.trace_id:
            source["trace_id"] = caller.trace_id
        new = store.prepare_job(
            request,
            tenant=caller.tenant,
            channel=Channel.HTTP,
            idempotency_key=key,
            source=source,
            webhook_secret=secret,
            route="workflows" if request.is_long(settings.long_job_threshold_ms) else "tasks",
        )
        outcome = await writer.create(new)
    finally:
        # Written (a count sees it now) or failed: either way no longer in flight.
        active_jobs.release(caller.tenant)
    if outcome.created:
        metrics.JOBS_SUBMITTED.labels(Channel.HTTP.value, request.priority.value).inc()
    return Submission(outcome.job, outcome.created, generated if outcome.created else None)


def check_list_cursor(cursor: str) -> None:
    """NotFound (the documented bad-cursor answer) unless `cursor` encodes a possible job id.

    Every job id we mint is a safe id; anything else (`__main__`, `.`, `..`) names no job, and
    Firestore refuses such document ids with InvalidArgument, which would read as an outage.
    """
    try:
        job_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # not base64, or not UTF-8 inside
        raise NotFound("invalid cursor") from None
    if not is_safe_id(job_id):
        raise NotFound("invalid cursor")


def cancel_job(store: JobStore, job_id: str, *, tenant: str) -> JobRecord:
    """Cancel a job that has not finished; Conflict when it already reached a terminal state."""
    job = store.require_job(job_id, tenant=tenant)
    if job.status.terminal:
        raise Conflict(
            f"job {job_id} already {job.status.value}",
            extra={"job_id": job_id, "from": job.status.value},
        )
    updated = store.request_cancel(job_id)
    if updated.status.terminal and updated.status is not JobStatus.CANCELLED:
        raise Conflict(
            f"job {job_id} already {updated.status.value}",
            extra={"job_id": job_id, "from": updated.status.value},
        )
    return updated


# ---- views (what callers see of a job) ------------------------------------------------------


def job_urls(base_url: str, job_id: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {
        "status_url": f"{base}/v2/jobs/{job_id}",
        "events_url": f"{base}/v2/jobs/{job_id}/events",
    }


def execution_time_ms(job: JobRecord) -> int | None:
    if job.result is not None and job.result.duration_ms is not None:
        return job.result.duration_ms
    if job.started_at is not None and job.finished_at is not None:
        return int((job.finished_at - job.started_at).total_seconds() * 1000)
    return None


def job_view(job: JobRecord, base_url: str) -> dict[str, Any]:
    """The public representation of a job (no webhook secret, no lease internals)."""
    request = job.request.model_dump(mode="json")
    if request.get("webhook"):
        request["webhook"].pop("secret", None)
    return {
        "job_id": job.job_id,
        "session_id": job.session_id,
        "status": job.status.value,
        "mode": job.request.mode.value,
        "priority": job.request.priority.value,
        "channel": job.channel.value,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "deadline_at": job.deadline_at,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "metadata": dict(job.request.metadata),
        "request": request,
        "result": job.result.model_dump(mode="json") if job.result else None,
        "error": job.error.model_dump(mode="json") if job.error else None,
        "execution_time_ms": execution_time_ms(job),
        **job_urls(base_url, job.job_id),
    }


def sync_view(job: JobRecord) -> dict[str, Any]:
    result = job.result
    stderr = ""
    if job.error is not None:
        stderr = job.error.message
    elif result is not None and result.stderr_tail:
        stderr = result.stderr_tail
    return {
        "session_id": job.session_id,
        "mode": Mode.SYNC.value,
        "job_id": job.job_id,
        "status": job.status.value,
        "exit_code": result.exit_code if result else None,
        "stdout": (result.final_message or "") if result else "",
        "stderr": stderr,
        "execution_time_ms": execution_time_ms(job),
        "result": result.model_dump(mode="json") if result else None,
    }


def async_view(job: JobRecord, base_url: str, mode: Mode) -> dict[str, Any]:
    return {
        "session_id": job.session_id,
        "mode": mode.value,
        "job_id": job.job_id,
        "status": job.status.value,
        # No history-based estimate yet: the deadline is the latest the job can finish.
        "estimated_completion": job.deadline_at,
        **job_urls(base_url, job.job_id),
    }


# ---- artifacts -----------------------------------------------------------------------------


def _artifact_object(job_id: str, name: str) -> str:
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise NotFound(f"artifact {name} not found")
    return f"{job_id}/{name}"


def list_artifacts(blobs: BlobStore, job_id: str) -> list[BlobInfo]:
    bucket = blobs.bucket_name("outputs")
    return blobs.list(bucket, prefix=f"{job_id}/")


@dataclass(frozen=True)
class ArtifactDownload:
    name: str
    signed_url: str | None
    content_type: str
    size: int
    # The bytes, read from storage as they are sent (empty when there is a signed URL).
    chunks: Iterator[bytes]


def get_artifact(blobs: BlobStore, job_id: str, name: str, *, url_ttl_s: int) -> ArtifactDownload:
    from datetime import timedelta

    bucket = blobs.bucket_name("outputs")
    object_name = _artifact_object(job_id, name)
    info = blobs.stat(bucket, object_name)
    if info is None:
        raise NotFound(f"artifact {name} not found")
    content_type = info.content_type or "application/octet-stream"
    url = blobs.signed_url(bucket, object_name, ttl=timedelta(seconds=url_ttl_s))
    if url is not None:
        return ArtifactDownload(name, url, content_type, info.size, iter(()))
    chunks = blobs.read_chunks(bucket, object_name, size=info.size, generation=info.generation)
    # Read the first chunk now: a failure then is still a problem response, not a cut body.
    try:
        first = next(chunks, b"")
    except NotFound:
        raise NotFound(f"artifact {name} not found") from None
    return ArtifactDownload(name, None, content_type, info.size, chain([first], chunks))


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
