"""Choosing a worker: rendezvous (highest-random-weight) hashing of the session id over the
healthy registered workers, so a session keeps landing on the same worker (the place for a
worker-local session cache) while adding or removing one worker moves only that worker's share
of sessions; jobs that name no session go to the pool's balancer instead (`task_target`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.errors import DependencyUnavailable

if TYPE_CHECKING:
    from shared.adapters import Adapters
    from shared.models import JobRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    url: str
    heartbeat_at: datetime | None = None
    slots: int = 1
    draining: bool = False


def _score(key: str, worker_id: str) -> int:
    digest = hashlib.sha256(f"{key}\x00{worker_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def rank_workers(key: str, workers: Iterable[WorkerInfo]) -> list[WorkerInfo]:
    """All workers, best first for `key` (deterministic; ties broken by id)."""
    return sorted(workers, key=lambda w: (-_score(key, w.worker_id), w.worker_id))


def healthy(
    workers: Iterable[WorkerInfo], *, now: datetime, stale_after: timedelta
) -> list[WorkerInfo]:
    """Workers with a fresh heartbeat, not draining, with at least one slot."""
    return [
        w
        for w in workers
        if not w.draining
        and w.slots > 0
        and w.url
        and w.heartbeat_at is not None
        and now - w.heartbeat_at <= stale_after
    ]


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def worker_from_doc(worker_id: str, doc: dict[str, Any]) -> WorkerInfo:
    slots_raw = doc.get("slots", 1)
    try:
        slots = int(slots_raw)
    except (TypeError, ValueError):
        slots = 1
    return WorkerInfo(
        worker_id=worker_id,
        url=str(doc.get("url") or "").rstrip("/"),
        heartbeat_at=_as_datetime(doc.get("heartbeat_at")),
        slots=slots,
        draining=bool(doc.get("draining", False)),
    )


def registered_workers(adapters: Adapters) -> list[WorkerInfo]:
    col = adapters.firestore.collection(adapters.settings.workers_collection)
    return [worker_from_doc(s.id, s.to_dict() or {}) for s in col.stream()]


def candidate_urls(adapters: Adapters, session_key: str, *, now: datetime) -> Sequence[str]:
    """Worker base URLs, best first. Falls back to `settings.worker_pool_url` when no healthy worker
    is registered (a single worker behind a load balancer, or the registry not yet populated)."""
    settings = adapters.settings
    alive = healthy(
        registered_workers(adapters),
        now=now,
        stale_after=timedelta(seconds=settings.worker_stale_seconds),
    )
    if not alive:
        if not settings.worker_pool_url:
            # Raised (the event is retried, the sweeper redispatches) rather than sending the
            # job to a URL that fails on every delivery.
            raise DependencyUnavailable(
                "no worker to send the job to: none is registered and healthy, and "
                "CODEX_CLOUD_WORKER_URL names no worker pool"
            )
        return [settings.worker_pool_url]
    return [w.url for w in rank_workers(session_key, alive)]


def worker_url_for(adapters: Adapters, worker_id: str) -> str | None:
    snap = (
        adapters.firestore.collection(adapters.settings.workers_collection)
        .document(worker_id)
        .get()
    )
    if not snap.exists:
        return None
    return worker_from_doc(worker_id, snap.to_dict() or {}).url or None


def task_target(adapters: Adapters, job: JobRecord, *, now: datetime) -> str:
    """The worker base URL a job's task goes to.

    A job that names a session goes to the session's worker (rendezvous hashing, decision 0100:
    the place for a worker-local session cache; today every turn restores from storage,
    decision 0013). Any other job goes to the pool's load-balanced URL (`settings.worker_pool_url`):
    a burst is spread over every worker, and a task refused by a full worker (429) is retried
    through the balancer onto another one. Hashing those jobs too would pile a burst's unlucky
    share onto one worker while others sit idle (decision 0104)."""
    pool = adapters.settings.worker_pool_url
    if job.request.session_id is None and pool:
        return pool
    return candidate_urls(adapters, job.session_id, now=now)[0]
