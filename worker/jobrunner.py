"""Run one claimed job end to end: workspace, session restore, codex, events, artifacts,
session save, and the final guarded state change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from shared.adapters import Adapters
from shared.errors import CodexCloudError, InvalidInput, NotFound, PermanentError
from shared.jobstore import DocMerge, EventCursor, LeaseLost, check_lease
from shared.log import log_context
from shared.metrics import CODEX_DURATION, WORKER_JOBS
from shared.models import (
    ArchiveWorkspace,
    EventDraft,
    GitWorkspace,
    JobError,
    JobRecord,
    JobResult,
    JobStatus,
    MessageType,
    TokenUsage,
)
from shared.services.uploads import archive_owner
from shared.settings import Settings
from worker.codex.config import CodexConfig, ProviderConfig, prepare_codex_home
from worker.codex.env import ApiKey, build_codex_env
from worker.codex.process import CodexOutcome, CodexRunSpec, run_codex
from worker.codex.sessions import pack_session_state, unpack_session_state
from worker.codex.statedb import build_state_template, seed_codex_home
from worker.codex.workspace import (
    Snapshot,
    WorkspaceDiff,
    WorkspaceError,
    archive_changed,
    clone_repo,
    diff,
    extract_archive,
    fingerprint,
    prepare_empty,
    snapshot,
)
from worker.early import EarlyArtifacts, last_agent_message
from worker.events import EventBatcher
from worker.phases import PhaseTimer
from worker.sessions import SessionError, SessionState, SessionStore, turn_prefix

log = logging.getLogger(__name__)

StopReason = Literal["cancelled", "lease-lost", "draining"]
# Artifact object names under `{job_id}/` in the outputs bucket, with their content types.
ARTIFACTS = {
    "events.jsonl": "application/x-ndjson",
    "final-message.txt": "text/plain",
    "diff.patch": "text/x-diff",
    "changes.tar.gz": "application/gzip",
}
# A Firestore batch holds 500 writes: the job, the event head, the status event and these.
MAX_EVENTS_IN_FINAL_WRITE = 400
# What of a result the job document keeps (Firestore refuses documents over 1 MiB; the job's
# request and events head share it). The artifacts keep everything whole.
MAX_FINAL_MESSAGE_CHARS = 64_000
MAX_CHANGED_FILES_LISTED = 1_000
MAX_STRUCTURED_OUTPUT_BYTES = 256_000
# The variable codex reads the model key from; agent commands never see it.
MODEL_KEY_VAR = "OPENAI_API_KEY"


@dataclass
class StopSignal:
    """Why a running job must stop; the first reason wins."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()


class JobRunner:
    def __init__(self, adapters: Adapters, binary: Path, worker_id: str) -> None:
        self.adapters = adapters
        self.settings: Settings = adapters.settings
        self.binary = binary
        self.worker_id = worker_id
        # codex's state databases for new jobs' homes, once made (`prepare_state_template`).
        self.state_template: Path | None = None
        self.sessions = SessionStore(
            adapters.firestore, adapters.storage, self.settings.topology.bucket("sessions")
        )
        self._cleanups: set[asyncio.Task[None]] = set()

    async def settle(self) -> None:
        """Wait for workspace removals still running in the background (shutdown)."""
        if self._cleanups:
            await asyncio.wait(list(self._cleanups))

    # ---- public --------------------------------------------------------------------------

    async def run(
        self,
        job: JobRecord,
        stop: StopSignal,
        cursor: EventCursor | None = None,
        timer: PhaseTimer | None = None,
    ) -> JobRecord | None:
        """Run a job this worker has claimed. Returns the final record, or None when the job
        was handed back (lease lost, or requeued on drain). `timer` may already hold the
        claim's time."""
        root = Path(self.settings.workspace_root) / f"{job.job_id}-{job.attempt}"
        timer = timer or PhaseTimer()
        final: JobRecord | None = None
        with log_context(job_id=job.job_id, attempt=job.attempt, worker=self.worker_id):
            try:
                final = await self._run(job, stop, root, cursor, timer)
                return final
            finally:
                # The caller gets its answer now; removing the workspace is not its wait.
                cleanup = asyncio.create_task(asyncio.to_thread(shutil.rmtree, root, True))
                self._cleanups.add(cleanup)
                cleanup.add_done_callback(self._cleanups.discard)
                log.info(
                    "job %s run ended: %s",
                    job.job_id,
                    final.status.value if final else "handed back",
                    extra={"fields": {"phases_ms": timer.ms, "total_ms": timer.total_ms()}},
                )

    # ---- steps ---------------------------------------------------------------------------

    async def _run(
        self,
        job: JobRecord,
        stop: StopSignal,
        root: Path,
        cursor: EventCursor | None,
        timer: PhaseTimer,
    ) -> JobRecord | None:
        store = self.adapters.jobs
        batcher = EventBatcher(
            store,
            job.job_id,
            flush_s=self.settings.event_flush_ms / 1000,
            min_interval_s=self.settings.event_write_interval_ms / 1000,
            max_batch=self.settings.event_batch_max,
            cursor=cursor,
        )
        heartbeat = asyncio.create_task(self._heartbeat(job, stop, batcher.cursor))
        started = time.monotonic()
        # Events taken from the batcher for the final write; written here if that write never
        # happens (an error in between, a lost lease), so the stream keeps them either way.
        unwritten: asyncio.Task[list[EventDraft]] | None = None
        landed = False
        try:
            remaining_s = (job.deadline_at - datetime.now(UTC)).total_seconds()
            if remaining_s <= 0:
                return await self._finish(
                    job,
                    JobStatus.TIMED_OUT,
                    None,
                    JobError(code="deadline", message="deadline passed before the job could start"),
                )
            workdir = root / "workspace"
            try:
                # All of it off the event loop (a clone, an archive or a saved session can be
                # large), and inside this `try`: a saved session gone from storage is a clear
                # failure of this job, not a crash that reruns it.
                with timer.phase("prepare"):
                    session = await asyncio.to_thread(self._prepare, job, root, workdir)
                    before = await asyncio.to_thread(snapshot, workdir)
                    spec = await asyncio.to_thread(self._spec, job, root, workdir, session)
            except (WorkspaceError, PermanentError) as exc:
                message = exc.detail if isinstance(exc, PermanentError) else str(exc)
                await batcher.add(
                    EventDraft(
                        message_type=MessageType.ERROR,
                        data={"stage": "workspace", "message": message},
                    )
                )
                await batcher.close()
                return await self._finish(
                    job,
                    JobStatus.FAILED,
                    None,
                    JobError(code="workspace-error", message=message),
                    batcher.cursor,
                )
            if spec.timeout_s <= 0:
                # Preparing took the rest of the job's time.
                await batcher.close()
                return await self._finish(
                    job,
                    JobStatus.TIMED_OUT,
                    None,
                    JobError(code="deadline", message="deadline passed while preparing the job"),
                    batcher.cursor,
                )
            early: asyncio.Task[EarlyArtifacts | None] | None = None

            async def on_record(record: dict[str, object]) -> None:
                nonlocal early
                await batcher.add_codex_record(record)
                if record.get("type") == "turn.completed" and early is None:
                    # codex still shuts down for a while: collect beside it (worker/early.py).
                    early = asyncio.create_task(
                        asyncio.to_thread(
                            self._collect_early, job, root, workdir, before, list(batcher.raw)
                        )
                    )

            try:
                with timer.phase("codex"):
                    outcome = await run_codex(spec, on_record, stop.event)
            finally:
                with timer.phase("collect"):  # what is left of it once codex has exited
                    early_done = await _settled(early)
            CODEX_DURATION.observe(outcome.duration_s)
            if stop.reason in ("lease-lost", "draining"):
                with timer.phase("events"):
                    await batcher.close()
                await self._hand_back(job, stop.reason)
                return None
            # The last events ride in the final write; collecting the result does not wait for
            # the batch in flight.
            unwritten = asyncio.create_task(batcher.detach())
            with timer.phase("collect"):
                result, session_index = await asyncio.to_thread(
                    self._collect,
                    job,
                    root,
                    workdir,
                    before,
                    outcome,
                    batcher.raw,
                    started,
                    early_done,
                )
            with timer.phase("events"):
                last_events = await unwritten
                if len(last_events) > MAX_EVENTS_IN_FINAL_WRITE:
                    await asyncio.to_thread(
                        store.append_events, job.job_id, last_events, cursor=batcher.cursor
                    )
                    landed = True
                    last_events = []
            status, error = _status_of(outcome, stop.reason)
            with timer.phase("finish"):
                try:
                    final = await self._finish(
                        job,
                        status,
                        result,
                        error,
                        batcher.cursor,
                        events=last_events,
                        merges=[session_index] if session_index else [],
                    )
                except InvalidInput as exc:
                    # Refused by the store even bounded: record that, rather than leave the
                    # job to its lease and run codex again for the same refusal.
                    log.error("final write refused: %s", exc.detail)
                    final = await self._finish(
                        job,
                        JobStatus.FAILED,
                        None,
                        JobError(
                            code="result-refused", message="the job's result could not be stored"
                        ),
                        batcher.cursor,
                        events=last_events,
                    )
                landed = True
                return final
        except LeaseLost:
            log.warning("lease lost; another worker owns the job now")
            return None
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if unwritten is not None and not landed:
                await self._write_leftover_events(job.job_id, unwritten, batcher.cursor)
            if not batcher.closed:
                await batcher.close()

    async def _write_leftover_events(
        self, job_id: str, unwritten: asyncio.Task[list[EventDraft]], cursor: EventCursor
    ) -> None:
        """Best effort: the run's last events, when the final write that should have carried
        them did not happen."""
        try:
            events = await unwritten
            if events:
                await asyncio.to_thread(
                    self.adapters.jobs.append_events, job_id, events, cursor=cursor
                )
        except CodexCloudError as exc:
            log.warning("the run's last events were not written: %s", exc.detail)

    def _prepare(self, job: JobRecord, root: Path, workdir: Path) -> SessionState | None:
        # A first attempt of a job that named no session starts one: nothing to look up. A
        # retry looks, since its earlier attempt may have saved a turn under that id.
        fresh = job.request.session_id is None and job.attempt <= 1
        session = None if fresh else self.sessions.load(job.session_id, job.tenant)
        ws = job.request.workspace
        if isinstance(ws, GitWorkspace):
            workdir.parent.mkdir(parents=True, exist_ok=True)
            clone_repo(ws.url, workdir, ws.ref, timeout_s=300)
        elif isinstance(ws, ArchiveWorkspace):
            uploads = self.settings.topology.bucket("uploads")
            bucket = ws.bucket or uploads
            owner = archive_owner(ws.object, self.settings.upload_default_tenant)
            if bucket != uploads or owner != job.tenant:
                # Never let a job read another tenant's upload or an arbitrary bucket.
                raise WorkspaceError(
                    f"workspace archive gs://{bucket}/{ws.object} is not an upload of this tenant"
                )
            try:
                blob = self.adapters.storage.get(
                    bucket, ws.object, max_bytes=512 * 1024 * 1024, generation=ws.generation
                )
            except NotFound:
                version = f" (generation {ws.generation})" if ws.generation else ""
                raise WorkspaceError(
                    f"workspace archive {ws.object}{version} no longer exists"
                ) from None
            prepare_empty(workdir)
            extract_archive(blob, workdir)
        else:
            prepare_empty(workdir)
            if session is not None and session.thread_id:
                saved = self.sessions.fetch_workspace(session)
                if saved is not None:
                    extract_archive(saved, workdir)
        return session

    def _spec(
        self,
        job: JobRecord,
        root: Path,
        workdir: Path,
        session: SessionState | None,
    ) -> CodexRunSpec:
        s = self.settings
        api_key = (
            ApiKey(MODEL_KEY_VAR, s.openai_api_key.get_secret_value()) if s.openai_api_key else None
        )
        home = prepare_codex_home(root / "codex", self._codex_config())
        resume = None
        if session is not None and session.thread_id:
            try:
                state = self.sessions.fetch_state(session)
            except NotFound:
                raise SessionError(
                    f"the saved state of session {job.session_id} no longer exists (sessions "
                    "are kept for a limited time); start a new session"
                ) from None
            unpack_session_state(state, home.codex_home)
            resume = session.thread_id
        elif self.state_template is not None:
            # A new thread only: a resume lets codex rebuild its state from the rollouts.
            seed_codex_home(self.state_template, home.codex_home)
        env = build_codex_env(
            home=home.home,
            codex_home=home.codex_home,
            tmp_dir=home.tmp_dir,
            api_key=api_key,
            git_ceiling=root.resolve(),
        )
        scratch = root / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        return CodexRunSpec(
            binary=self.binary,
            workdir=workdir,
            prompt=job.request.prompt,
            env=env,
            # Measured now, after preparing: codex gets what is left of the job's deadline.
            timeout_s=min(
                (job.deadline_at - datetime.now(UTC)).total_seconds(),
                job.request.timeout_ms / 1000,
            ),
            output_schema=job.request.output_schema,
            resume_thread_id=resume,
            scratch_dir=scratch,
        )

    def _codex_config(self) -> CodexConfig:
        s = self.settings
        provider = ProviderConfig(
            base_url=s.model_base_url,
            model=s.model,
            api_key_env_var=MODEL_KEY_VAR if s.openai_api_key else None,
            request_max_retries=s.model_request_max_retries,
            stream_max_retries=s.model_stream_max_retries,
            stream_idle_timeout_ms=s.model_stream_idle_timeout_ms,
        )
        return CodexConfig(
            provider=provider, sandbox_mode=s.sandbox_mode, bundled_skills=s.codex_bundled_skills
        )

    def prepare_state_template(self) -> None:
        """Have codex make its state databases once, for new jobs' homes (worker/codex/statedb.py).
        Blocking: call it off the event loop, before taking jobs."""
        if not self.settings.codex_seed_state:
            return
        self.state_template = build_state_template(
            self.binary, self._template_root(), self._codex_config()
        )

    def discard_state_template(self) -> None:
        self.state_template = None
        shutil.rmtree(self._template_root(), ignore_errors=True)

    def _template_root(self) -> Path:
        return Path(self.settings.workspace_root) / f".codex-state-{self.worker_id}"

    def _collect(
        self,
        job: JobRecord,
        root: Path,
        workdir: Path,
        before: Snapshot,
        outcome: CodexOutcome,
        raw_events: list[dict[str, object]],
        started: float,
        early: EarlyArtifacts | None = None,
    ) -> tuple[JobResult, DocMerge | None]:
        """The job's result with its artifacts uploaded, and the session index update for the
        final write (None when no session was saved). What `early` collected is reused where
        it still holds."""
        same_workspace, done = (
            early.reusable(fingerprint(workdir), len(raw_events), outcome.final_message)
            if early is not None
            else (False, {})
        )
        changes = early.changes if early is not None and same_workspace else diff(before, workdir)
        changed = [c.path for c in changes.changes]
        workspace_saved = early is not None and same_workspace and early.workspace_saved
        # Every artifact and the session state are independent uploads: send them side by
        # side, so this step costs about one round trip instead of six.
        # Slots: one per artifact, the session save, and the two uploads it waits for.
        with ThreadPoolExecutor(max_workers=len(ARTIFACTS) + 3) as pool:
            session_saved = pool.submit(
                self._save_session,
                pool,
                job,
                root,
                workdir,
                changes.files,
                outcome,
                workspace_saved,
            )
            artifacts = self._upload_artifacts(
                pool,
                job,
                workdir,
                changes,
                outcome.final_message,
                raw_events,
                [name for name in ARTIFACTS if name not in done],
            )
            session_index = session_saved.result()
        result = JobResult(
            exit_code=outcome.exit_code,
            final_message=outcome.final_message,
            usage=TokenUsage.model_validate(outcome.usage) if outcome.usage else None,
            changed_files=changed,
            duration_ms=int((time.monotonic() - started) * 1000),
            attempt=job.attempt,
            structured_output=outcome.structured_output,
            thread_id=outcome.thread_id,
            stderr_tail="\n".join(outcome.stderr_tail[-20:]) or None,
            artifacts={**done, **artifacts},
        )
        return bound_result(result), session_index

    def _collect_early(
        self,
        job: JobRecord,
        root: Path,
        workdir: Path,
        before: Snapshot,
        raw_events: list[dict[str, object]],
    ) -> EarlyArtifacts:
        """What can be collected once the turn completed, while codex exits (the fingerprint
        first: a write after it shows as a changed fingerprint at the check)."""
        seen = fingerprint(workdir)
        changes = diff(before, workdir)
        final_message = last_agent_message(raw_events)
        with ThreadPoolExecutor(max_workers=len(ARTIFACTS) + 1) as pool:
            # The session's workspace archive under this turn's prefix; harmless if the turn's
            # session state is not saved after all (the index never names it then).
            workspace = pool.submit(
                self.sessions.upload,
                job.session_id,
                turn_prefix(job.job_id, job.attempt),
                state=None,
                workspace=archive_changed(workdir, changes.files),
            )
            urls = self._upload_artifacts(
                pool, job, workdir, changes, final_message, raw_events, list(ARTIFACTS)
            )
            try:
                workspace.result()
                workspace_saved = True
            except (CodexCloudError, OSError) as exc:
                log.info("session workspace not saved early: %s", exc)
                workspace_saved = False
        return EarlyArtifacts(
            fingerprint=seen,
            changes=changes,
            urls=urls,
            events_count=len(raw_events),
            final_message=final_message,
            workspace_saved=workspace_saved,
        )

    def _save_session(
        self,
        pool: ThreadPoolExecutor,
        job: JobRecord,
        root: Path,
        workdir: Path,
        files: tuple[str, ...],
        outcome: CodexOutcome,
        workspace_saved: bool = False,
    ) -> DocMerge | None:
        """Upload the turn's session state and workspace (`files`: all files in it now;
        `workspace_saved`: that archive is uploaded already); returns the index update for the
        final write."""
        if not outcome.thread_id:
            return None
        try:
            state = pack_session_state(root / "codex" / "codex-home", outcome.thread_id)
            workspace = None if workspace_saved else archive_changed(workdir, files)
            prefix = turn_prefix(job.job_id, job.attempt)
            self.sessions.upload(
                job.session_id, prefix, state=state, workspace=workspace, pool=pool
            )
        except (CodexCloudError, OSError, LookupError) as exc:
            log.warning("session state not saved: %s", exc)
            return None
        return self.sessions.index(
            session_id=job.session_id,
            prefix=prefix,
            tenant=job.tenant,
            thread_id=outcome.thread_id,
            job_id=job.job_id,
            worker_id=self.worker_id,
        )

    def _upload_artifacts(
        self,
        pool: ThreadPoolExecutor,
        job: JobRecord,
        workdir: Path,
        changes: WorkspaceDiff,
        final_message: str | None,
        raw_events: list[dict[str, object]],
        names: list[str],
    ) -> dict[str, str]:
        """Upload the artifacts `names` (side by side on `pool`): their gs:// URLs."""
        bucket = self.settings.topology.bucket("outputs")
        changed = [c.path for c in changes.changes]
        contents: dict[str, Callable[[], bytes]] = {
            "events.jsonl": lambda: "".join(json.dumps(e) + "\n" for e in raw_events).encode(),
            "final-message.txt": lambda: (final_message or "").encode(),
            "diff.patch": changes.patch.encode,
            "changes.tar.gz": lambda: archive_changed(workdir, changed),
        }

        def upload(name: str) -> str:
            path = f"{job.job_id}/{name}"
            self.adapters.storage.put(bucket, path, contents[name](), content_type=ARTIFACTS[name])
            return f"gs://{bucket}/{path}"

        uploads = {name: pool.submit(upload, name) for name in names}
        return {name: future.result() for name, future in uploads.items()}

    async def _finish(
        self,
        job: JobRecord,
        status: JobStatus,
        result: JobResult | None,
        error: JobError | None,
        cursor: EventCursor | None = None,
        events: list[EventDraft] | None = None,
        merges: list[DocMerge] | None = None,
    ) -> JobRecord:
        WORKER_JOBS.labels(outcome=status.value).inc()
        return await asyncio.to_thread(
            self.adapters.jobs.finish,
            job.job_id,
            status,
            worker_id=self.worker_id,
            attempt=job.attempt,
            result=result,
            error=error,
            reason=error.message if error else None,
            cursor=cursor,
            events=events or [],
            merges=merges or [],
        )

    async def _hand_back(self, job: JobRecord, reason: StopReason) -> None:
        if reason == "draining":
            outcome = "requeued"
            with contextlib.suppress(CodexCloudError):
                after = await asyncio.to_thread(
                    self.adapters.jobs.transition,
                    job.job_id,
                    JobStatus.QUEUED,
                    expected=[JobStatus.RUNNING],
                    reason="worker shutting down; requeued",
                    guard=lambda j: check_lease(j, self.worker_id, job.attempt),
                )
                # A job with a cancel request ends cancelled instead (JobStore.transition).
                outcome = after.status.value if after.status.terminal else outcome
            WORKER_JOBS.labels(outcome=outcome).inc()

    async def _heartbeat(self, job: JobRecord, stop: StopSignal, cursor: EventCursor) -> None:
        """Renew the lease; learn about cancellation and lease loss."""
        s = self.settings
        while True:
            await asyncio.sleep(s.heartbeat_seconds)
            try:
                current = await asyncio.to_thread(
                    self.adapters.jobs.heartbeat,
                    job.job_id,
                    worker_id=self.worker_id,
                    attempt=job.attempt,
                    lease_s=s.lease_seconds,
                    # Keeps the cursor's view of the job current, so the final write stays
                    # read-free however long the job runs.
                    cursor=cursor,
                )
            except LeaseLost:
                stop.stop("lease-lost")
                return
            except CodexCloudError as exc:
                log.warning("heartbeat failed: %s", exc.detail)
                continue
            except Exception:
                # Anything else (a client error no adapter maps) must not end the heartbeats:
                # the lease would run out under a healthy run, and the job be run twice.
                log.exception("heartbeat failed")
                continue
            if current.cancel_requested:
                stop.stop("cancelled")


def bound_result(result: JobResult) -> JobResult:
    """`result` with what would not fit the job document shortened, named in `truncated`."""
    updates: dict[str, object] = {}
    message = result.final_message
    if message and len(message) > MAX_FINAL_MESSAGE_CHARS:
        rest = len(message) - MAX_FINAL_MESSAGE_CHARS
        updates["final_message"] = (
            message[:MAX_FINAL_MESSAGE_CHARS]
            + f"\n... [{rest} more characters in final-message.txt]"
        )
    if len(result.changed_files) > MAX_CHANGED_FILES_LISTED:
        updates["changed_files"] = result.changed_files[:MAX_CHANGED_FILES_LISTED]
    if (
        result.structured_output is not None
        and len(json.dumps(result.structured_output, default=str)) > MAX_STRUCTURED_OUTPUT_BYTES
    ):
        updates["structured_output"] = None
    if not updates:
        return result
    return result.model_copy(update={**updates, "truncated": sorted(updates)})


def _status_of(
    outcome: CodexOutcome, reason: StopReason | None
) -> tuple[JobStatus, JobError | None]:
    if outcome.status == "succeeded":
        return JobStatus.SUCCEEDED, None
    if outcome.status == "timed_out":
        return JobStatus.TIMED_OUT, JobError(code="timeout", message="job exceeded its timeout")
    if outcome.status == "cancelled" or reason == "cancelled":
        return JobStatus.CANCELLED, JobError(code="cancelled", message="cancelled by request")
    message = outcome.error or f"codex exited with code {outcome.exit_code}"
    return JobStatus.FAILED, JobError(code="codex-failed", message=message)


async def _settled(
    task: asyncio.Task[EarlyArtifacts | None] | None,
) -> EarlyArtifacts | None:
    """The early collection's result, or None when it did not run or failed (the normal
    collection then does everything); never leaves its thread behind."""
    if task is None:
        return None
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise
    except Exception as exc:
        log.warning("early collection failed; collecting after the exit: %s", exc)
        return None
