"""The worker's slots, running jobs, registry heartbeat, cancellation watch and drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.adapters import Adapters
from shared.errors import CapacityExhausted, CodexCloudError, IllegalTransition, RetryableError
from shared.jobstore import EventCursor
from shared.metrics import WORKER_SLOTS
from shared.models import JobRecord
from worker.codex.binary import find_codex_binary
from worker.jobrunner import JobRunner, StopReason, StopSignal
from worker.phases import PhaseTimer

log = logging.getLogger(__name__)


class Draining(RetryableError):
    code = "draining"
    title = "Worker is shutting down"


@dataclass
class Running:
    job_id: str
    stop: StopSignal
    task: asyncio.Task[JobRecord | None] | None = None


@dataclass(frozen=True)
class Accepted:
    status: str  # "accepted" | "ignored"
    job: JobRecord | None


class WorkerRuntime:
    def __init__(self, adapters: Adapters, advertise_url: str) -> None:
        self.adapters = adapters
        self.settings = adapters.settings
        self.worker_id = self.settings.worker_id
        self.advertise_url = advertise_url
        binary = find_codex_binary() if not self.settings.codex_bin else None
        from pathlib import Path

        self.runner = JobRunner(
            adapters, binary or Path(str(self.settings.codex_bin)), self.worker_id
        )
        self.slots = self.settings.worker_slots
        self.running: dict[str, Running] = {}
        self.draining = False
        self._registry_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: Any = None
        self._signal_deletes: set[asyncio.Task[Any]] = set()
        self._update_gauges()

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.runner.prepare_state_template)
        self._registry_task = asyncio.create_task(self._registry_loop())
        self._watch = await asyncio.to_thread(self._watch_own_jobs)

    async def drain(self) -> None:
        """SIGTERM: accept nothing new, give running jobs the grace period, requeue the rest."""
        self.draining = True
        await self._register()
        pending = [r.task for r in self.running.values() if r.task is not None]
        if pending:
            log.info("draining %d running jobs", len(pending))
            _, still = await asyncio.wait(pending, timeout=self.settings.drain_grace_seconds)
            for running in list(self.running.values()):
                running.stop.stop("draining")
            if still:
                await asyncio.wait(still, timeout=30)
        await self.runner.settle()
        await asyncio.to_thread(self.runner.discard_state_template)
        if self._watch is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._watch.unsubscribe)
        if self._registry_task is not None:
            self._registry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registry_task
        with contextlib.suppress(CodexCloudError, Exception):
            await asyncio.to_thread(
                self.adapters.firestore.collection(self.settings.workers_collection)
                .document(self.worker_id)
                .delete
            )

    # ---- jobs ----------------------------------------------------------------------------

    def free_slots(self) -> int:
        return self.slots - len(self.running)

    async def accept(self, job_id: str, *, wait: bool) -> Accepted:
        """Claim and start a job (idempotent per delivery)."""
        if self.draining:
            raise Draining("worker is draining", retry_after_s=5)
        if job_id in self.running:
            return Accepted("ignored", None)
        if self.free_slots() <= 0:
            raise CapacityExhausted("all job slots are busy", retry_after_s=2)
        running = Running(job_id=job_id, stop=StopSignal())
        self.running[job_id] = running  # reserve the slot before the first await
        self._update_gauges()
        # The claim leaves the cursor after its own write: the first event batch needs no read.
        cursor = EventCursor()
        timer = PhaseTimer()
        try:
            with timer.phase("claim"):
                job = await asyncio.to_thread(
                    self.adapters.jobs.claim,
                    job_id,
                    worker_id=self.worker_id,
                    lease_s=self.settings.lease_seconds,
                    cursor=cursor,
                )
        except IllegalTransition:
            self._release(job_id)
            current = await asyncio.to_thread(self.adapters.jobs.get_job, job_id)
            return Accepted("ignored", current)
        except BaseException:
            self._release(job_id)
            raise
        running.task = asyncio.create_task(
            self._run(job, running, cursor, timer), name=f"job-{job_id}"
        )
        if wait:
            final = await running.task
            return Accepted("accepted", final or job)
        return Accepted("accepted", job)

    async def _run(
        self, job: JobRecord, running: Running, cursor: EventCursor, timer: PhaseTimer
    ) -> JobRecord | None:
        try:
            return await self.runner.run(job, running.stop, cursor, timer)
        except Exception:
            log.exception("job run crashed")
            # The lease expires and the sweeper requeues it; nothing is lost.
            return None
        finally:
            self._release(job.job_id)

    def cancel(self, job_id: str) -> bool:
        if job_id not in self.running:
            return False
        self._stop_job(job_id, "cancelled")
        return True

    def _release(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        self._update_gauges()

    def _update_gauges(self) -> None:
        WORKER_SLOTS.labels(state="busy").set(len(self.running))
        WORKER_SLOTS.labels(state="free").set(max(0, self.slots - len(self.running)))

    def _watch_own_jobs(self) -> Any:
        """One listener per worker on its cancel mailbox (`JobStore.cancel_signals`): a cancel
        set through the API reaches the running job in milliseconds. Each signal is deleted
        once seen, so the mailbox stays empty; a lost lease is noticed by the heartbeat, and
        so is a cancel if this listener is down."""

        def on_change(_snapshots: list[Any], changes: list[Any], _read_time: Any) -> None:
            for change in changes:
                if change.type.name != "REMOVED" and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._on_cancel_signal, change.document.id)

        try:
            return self.adapters.jobs.cancel_signals(self.worker_id).on_snapshot(on_change)
        except Exception:  # the heartbeat still carries cancellation, just slower
            log.warning("could not watch this worker's cancel mailbox; relying on heartbeats")
            return None

    def _on_cancel_signal(self, job_id: str) -> None:
        self._stop_job(job_id, "cancelled")
        ref = self.adapters.jobs.cancel_signal_ref(self.worker_id, job_id)
        task = asyncio.create_task(asyncio.to_thread(ref.delete))
        self._signal_deletes.add(task)
        task.add_done_callback(self._signal_deleted)

    def _signal_deleted(self, task: asyncio.Task[Any]) -> None:
        self._signal_deletes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not delete a cancel signal (its TTL will): %s", task.exception())

    def _stop_job(self, job_id: str, reason: StopReason) -> None:
        # Also while the claim is still in flight (no task yet): the run then starts stopped.
        running = self.running.get(job_id)
        if running is not None:
            running.stop.stop(reason)

    # ---- registry ------------------------------------------------------------------------

    async def _registry_loop(self) -> None:
        while True:
            try:
                await self._register()
            except Exception as exc:  # keep trying: dispatch falls back to the service URL
                log.warning("worker registry update failed: %s", exc)
            await asyncio.sleep(self.settings.heartbeat_seconds)

    async def _register(self) -> None:
        doc = {
            "worker_id": self.worker_id,
            "url": self.advertise_url,
            "slots": self.slots,
            "busy": len(self.running),
            "draining": self.draining,
            "heartbeat_at": datetime.now(UTC),
        }
        await asyncio.to_thread(
            self.adapters.firestore.collection(self.settings.workers_collection)
            .document(self.worker_id)
            .set,
            doc,
        )
