"""Job records and their events on Firestore.

Design notes (see docs/decisions/0010-optimistic-job-writes.md):
- Every write to a job document is guarded by an update-time precondition (optimistic
  concurrency) instead of a transaction: no locks are held, so the emulator and Firestore do
  not serialise unrelated writers, and a lost race is simply re-read and re-checked.
- Events live in `jobs/{id}/events/{seq}`. Sequence numbers come from the job's `next_seq`
  field, bumped in the same atomic batch that creates the event documents, so concurrent
  appenders can never reuse or skip a number.
- The document id of a job with an idempotency key is derived from (tenant, key): a replay
  finds the existing job instead of creating another one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.adapters.firestore_writes import add_create
from shared.errors import (
    CodexCloudError,
    Conflict,
    DependencyUnavailable,
    IllegalTransition,
    InvalidInput,
    NotFound,
)
from shared.lifecycle import check_transition
from shared.models import (
    Channel,
    EventDraft,
    JobError,
    JobEvent,
    JobRecord,
    JobRequest,
    JobResult,
    JobStatus,
    MessageType,
    event_id_for,
    is_safe_id,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Values derived from the job as a guarded write read it.
JobValues = Callable[["JobRecord"], Mapping[str, Any]]
# A failed update-time precondition, a contended commit, or a create that found the head or an
# event already written: all mean another writer got there first.
_RACE_ERRORS = (gexc.FailedPrecondition, gexc.Aborted, gexc.Conflict)
# `jobs/{id}/{stream}/head` holds the next event sequence number.
HEAD_DOC = "head"
UNAVAILABLE_ERRORS = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.RetryError,
)
MAX_WRITE_RETRIES = 25
# A cancel signal the worker never took (it died) is deleted by Firestore's TTL after expire_at.
CANCEL_SIGNAL_TTL = timedelta(days=1)
# How long after expiring an orphaned lease document is deleted by Firestore's TTL.
LEASE_TTL = timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def job_id_for_key(tenant: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x00{idempotency_key}".encode()).hexdigest()
    return digest[:32]


def new_job_id() -> str:
    return uuid.uuid4().hex


def new_session_id() -> str:
    return f"sess_{uuid.uuid4().hex}"


class LeaseLost(Conflict):
    code = "lease-lost"
    title = "Lease lost"


def check_lease(job: JobRecord, worker_id: str, attempt: int) -> None:
    """Raise LeaseLost unless `worker_id` holds the lease of this attempt of the job."""
    if job.lease_owner != worker_id or job.attempt != attempt:
        raise LeaseLost(f"worker {worker_id} no longer holds job {job.job_id}")


@dataclass
class Mutation:
    """What a guarded write changes: document fields and events to append atomically."""

    fields: dict[str, Any] = field(default_factory=dict)
    events: list[EventDraft] = field(default_factory=list)
    # Other documents written in the same atomic batch (e.g. a session index that must change
    # exactly when the job's turn is recorded, the lease released with the run).
    merges: list[DocWrite] = field(default_factory=list)


@dataclass(frozen=True)
class DocMerge:
    """A `set(..., merge=True)` of another document, riding in a job write."""

    ref: Any
    data: Mapping[str, Any]


@dataclass(frozen=True)
class DocDelete:
    """A delete of another document, riding in a job write. With `last_update_time` the whole
    write fails (a race, re-read and re-decided) if that document changed since it was read."""

    ref: Any
    last_update_time: Any = None


DocWrite = DocMerge | DocDelete


@dataclass(frozen=True)
class Lease:
    """`leases/{job_id}`: which worker runs which attempt of a job, and until when.

    Heartbeats renew this document, not the job's: every write of a job document fires the
    job trigger (a function invocation) and wakes the job's listeners, and a running job
    heartbeats every few seconds for as long as it runs."""

    job_id: str
    worker: str
    attempt: int
    expires_at: datetime
    update_time: Any = None


@dataclass
class EventCursor:
    """A writer's view of one job as of its own last read or write: the job document with its
    update time, and the event head (the next sequence number) with its update time. With it,
    event appends and the final state change need no read; the update-time preconditions make
    the write fail, and the writer re-read, if anyone else wrote in between."""

    next_seq: int = 0
    # Update time of the head document; None while it does not exist yet (it is created by
    # the first write after the job's creation).
    head_time: Any = None
    head_known: bool = False
    # The job's attempt when the head was last read (events carry it).
    attempt: int = 0
    # The stored job document and its update time, when this writer knows them.
    doc: dict[str, Any] | None = None
    job_time: Any = None

    def remember_read(self, job: Any, head: Any) -> None:
        """Take what a read of the job and its head returned."""
        self.remember_job(job.to_dict(), job.update_time)
        if head.exists:
            self.next_seq = int(head.get("next_seq") or 0)
            self.head_time = head.update_time
        else:
            self.next_seq = int(job.get("next_seq") or 0)
            self.head_time = None
        self.head_known = True

    def remember_job(self, doc: Mapping[str, Any], update_time: Any) -> None:
        self.doc = dict(doc)
        self.job_time = update_time
        self.attempt = int(doc.get("attempt") or 0)

    def remember_head(self, next_seq: int, update_time: Any) -> None:
        self.next_seq = next_seq
        self.head_time = update_time
        self.head_known = True

    def record(self) -> JobRecord:
        """The job as this writer knows it (only when `doc` is set)."""
        assert self.doc is not None
        return decode_record({**self.doc, "next_seq": self.next_seq})


@dataclass(frozen=True)
class NewJob:
    """A job about to be created: its record and the two documents one batch creates."""

    record: JobRecord
    job_path: str
    job_fields: dict[str, Any]
    event_path: str
    event_fields: dict[str, Any]


@dataclass(frozen=True)
class CreateOutcome:
    job: JobRecord
    created: bool


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRecord]
    next_cursor: str | None


def _encode_record_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Model values → Firestore values. Free-form JSON (the request, results) is stored as
    a JSON string: Firestore rejects nested arrays and some keys that JSON allows."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("request", "result", "error"):
            out[key] = None if value is None else _json_of(value)
        elif isinstance(value, JobStatus | Channel):
            out[key] = value.value
        else:
            out[key] = value
    return out


def _json_of(value: Any) -> str:
    if hasattr(value, "model_dump_json"):
        return str(value.model_dump_json())
    return json.dumps(value, default=str)


def decode_record(doc: Mapping[str, Any]) -> JobRecord:
    """A job document as stored (JSON-string fields) → JobRecord."""
    data = dict(doc)
    for key in ("request", "result", "error"):
        raw = data.get(key)
        if isinstance(raw, str):
            data[key] = json.loads(raw)
    return JobRecord.model_validate(data)


def _encode_event(event: JobEvent, ttl: timedelta) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "job_id": event.job_id,
        "message_type": event.message_type.value,
        "data": json.dumps(event.data, default=str),
        "codex": None if event.codex is None else json.dumps(event.codex),
        "timestamp": event.timestamp,
        "attempt": event.attempt,
        "expire_at": event.timestamp + ttl,
    }


def decode_event(doc: Mapping[str, Any]) -> JobEvent:
    data = dict(doc)
    if isinstance(data.get("data"), str):
        data["data"] = json.loads(data["data"])
    if isinstance(data.get("codex"), str):
        data["codex"] = json.loads(data["codex"])
    return JobEvent.model_validate(data)


def _decode_lease(snap: Any) -> Lease:
    return Lease(
        job_id=str(snap.get("job_id")),
        worker=str(snap.get("worker")),
        attempt=int(snap.get("attempt")),
        expires_at=snap.get("expires_at"),
        update_time=snap.update_time,
    )


def status_event(
    previous: JobStatus, target: JobStatus, *, reason: str | None = None, **extra: Any
) -> EventDraft:
    """The event every state change appends (terminal ones are `complete`)."""
    data: dict[str, Any] = {"status": target.value, "previous_status": previous.value}
    if reason:
        data["reason"] = reason
    data.update({k: v for k, v in extra.items() if v is not None})
    message_type = MessageType.COMPLETE if target.terminal else MessageType.PROGRESS
    return EventDraft(message_type=message_type, data=data)


class JobStore:
    """All reads and guarded writes of job documents and their events."""

    def __init__(self, client: firestore.Client, settings: Settings, clock: Clock = utcnow):
        names = settings.topology.firestore
        self._client = client
        self._settings = settings
        self.jobs_collection = names.jobs_collection
        self._jobs = client.collection(names.jobs_collection)
        self._leases = client.collection(names.leases_collection)
        self._events_name = names.events_subcollection
        self._stream_name = names.stream_subcollection
        self._clock = clock
        self._event_ttl = timedelta(days=settings.event_ttl_days)

    # ---- create / read -------------------------------------------------------------------

    def prepare_job(
        self,
        request: JobRequest,
        *,
        tenant: str,
        channel: Channel,
        idempotency_key: str | None = None,
        source: Mapping[str, Any] | None = None,
        webhook_secret: str | None = None,
        route: str = "tasks",
    ) -> NewJob:
        """A queued job and the two documents whose creation makes it (nothing is written)."""
        key = idempotency_key or request.idempotency_key
        job_id = job_id_for_key(tenant, key) if key else new_job_id()
        now = self._clock()
        record = JobRecord(
            job_id=job_id,
            tenant=tenant,
            channel=channel,
            status=JobStatus.QUEUED,
            request=request,
            request_hash=request.fingerprint(),
            idempotency_key=key,
            session_id=request.session_id or new_session_id(),
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(milliseconds=request.timeout_ms),
            max_attempts=request.max_attempts or self._settings.default_max_attempts,
            route="workflows" if route == "workflows" else "tasks",
            next_seq=1,
            source=dict(source or {}),
            webhook_secret=webhook_secret,
        )
        first = JobEvent(
            seq=0,
            job_id=job_id,
            message_type=MessageType.PROGRESS,
            data={"status": JobStatus.QUEUED.value, "channel": channel.value},
            timestamp=now,
        )
        # Unset fields are left out rather than stored as nulls: fewer fields to encode and to
        # index on the hottest write (decoding fills in the model defaults).
        stored = {k: v for k, v in dict(record).items() if v is not None}
        return NewJob(
            record=record,
            job_path=self._jobs.document(job_id).path,
            job_fields=_encode_record_fields(stored),
            event_path=self._event_ref(job_id, 0).path,
            event_fields=_encode_event(first, self._event_ttl),
        )

    def create_job(
        self,
        request: JobRequest,
        *,
        tenant: str,
        channel: Channel,
        idempotency_key: str | None = None,
        source: Mapping[str, Any] | None = None,
        webhook_secret: str | None = None,
        route: str = "tasks",
    ) -> CreateOutcome:
        """Create a queued job, or return the existing one for a replayed idempotency key.

        Raises Conflict when the key was already used for a different request.
        """
        new = self.prepare_job(
            request,
            tenant=tenant,
            channel=channel,
            idempotency_key=idempotency_key,
            source=source,
            webhook_secret=webhook_secret,
            route=route,
        )
        batch = self._client.batch()
        add_create(batch, self._client.document(new.job_path), new.job_fields)
        add_create(batch, self._client.document(new.event_path), new.event_fields)
        try:
            self._call(batch.commit)
        except gexc.Conflict:
            return self.settle_conflict(new)
        return CreateOutcome(new.record, created=True)

    def settle_conflict(self, new: NewJob) -> CreateOutcome:
        """The create found its job id taken: that job when the request matches, else Conflict."""
        existing = self.get_job(new.record.job_id)
        if existing is None:  # pragma: no cover - deleted between the two calls
            raise DependencyUnavailable("job create raced with a delete")
        if existing.request_hash != new.record.request_hash:
            raise Conflict(
                "idempotency key already used with a different request",
                extra={"job_id": new.record.job_id},
            )
        return CreateOutcome(existing, created=False)

    def get_job(self, job_id: str) -> JobRecord | None:
        # Every job id we mint is a safe id. Anything else (`__main__`, which Firestore
        # reserves, or a `/`) names no job; asking Firestore would fail with InvalidArgument,
        # which callers would report as an outage (503) instead of 404.
        if not is_safe_id(job_id):
            return None
        snap = self._call(self._jobs.document(job_id).get)
        return decode_record(snap.to_dict()) if snap.exists else None

    def require_job(self, job_id: str, *, tenant: str | None = None) -> JobRecord:
        """The job, or NotFound — also when it belongs to another tenant (no existence leak)."""
        job = self.get_job(job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            raise NotFound(f"job {job_id} not found")
        return job

    def list_jobs(
        self,
        tenant: str,
        *,
        status: JobStatus | None = None,
        channel: Channel | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        query = self._jobs.where(filter=firestore.FieldFilter("tenant", "==", tenant))
        if status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", status.value))
        if channel is not None:
            query = query.where(filter=firestore.FieldFilter("channel", "==", channel.value))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING)
        if cursor:
            after = self._call(self._jobs.document(_decode_cursor(cursor)).get)
            if not after.exists or after.get("tenant") != tenant:
                raise NotFound("cursor does not point at a job of this tenant")
            query = query.start_after(after)
        snaps = self._call(lambda: list(query.limit(limit + 1).stream()))
        jobs = [decode_record(s.to_dict()) for s in snaps[:limit]]
        next_cursor = _encode_cursor(jobs[-1].job_id) if len(snaps) > limit and jobs else None
        return JobPage(jobs, next_cursor)

    def list_events(self, job_id: str, *, after_seq: int = -1, limit: int = 1000) -> list[JobEvent]:
        query = (
            self._events(job_id)
            .where(filter=firestore.FieldFilter("seq", ">", after_seq))
            .order_by("seq")
            .limit(limit)
        )
        return [decode_event(s.to_dict()) for s in self._call(lambda: list(query.stream()))]

    def query_by_status(
        self, status: JobStatus, *, field_name: str, before: datetime, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs in `status` whose `field_name` timestamp is older than `before` (sweeper)."""
        query = (
            self._jobs.where(filter=firestore.FieldFilter("status", "==", status.value))
            .where(filter=firestore.FieldFilter(field_name, "<", before))
            .limit(limit)
        )
        jobs = []
        for snap in self._call(lambda: list(query.stream())):
            try:
                jobs.append(decode_record(snap.to_dict()))
            except ValueError as exc:  # pydantic ValidationError and bad JSON strings alike
                # One document no release can read must not stop recovery of all the others.
                log.error(
                    "job document cannot be decoded; skipped",
                    extra={"fields": {"job_id": snap.id, "error": str(exc)[:500]}},
                )
        return jobs

    # ---- guarded writes ------------------------------------------------------------------

    def mutate(
        self,
        job_id: str,
        decide: Callable[[JobRecord], Mutation | None],
        *,
        cursor: EventCursor | None = None,
    ) -> JobRecord:
        """Read the job, let `decide` compute a change (or None for no-op, or raise), and write it
        only if nobody changed the job (or its events) meanwhile; otherwise re-read and decide
        again.

        A given `cursor` that knows the job is tried first without a read; it is left pointing
        after the write, so the caller's next event append needs no read either."""
        if cursor is not None and cursor.doc is not None and cursor.head_known:
            # Decide on the job as this writer last wrote or read it; the update-time
            # preconditions reject the write if anyone changed it since.
            try:
                record = cursor.record()
                mutation = decide(record)
                if mutation is None:
                    return record
                return self._commit(job_id, record, mutation, cursor)
            except (*_RACE_ERRORS, CodexCloudError):
                # Stale knowledge (or a refusal based on it): decide again on a fresh read.
                cursor.doc = None
        state = cursor if cursor is not None else EventCursor()
        for attempt in range(MAX_WRITE_RETRIES):
            self._read(job_id, state)
            record = state.record()
            mutation = decide(record)
            if mutation is None:
                return record
            try:
                return self._commit(job_id, record, mutation, state)
            except _RACE_ERRORS:
                _backoff(attempt)
        raise DependencyUnavailable(f"job {job_id} is too contended to update")

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        expected: Iterable[JobStatus] | None = None,
        fields: Mapping[str, Any] | JobValues | None = None,
        reason: str | None = None,
        event_data: Mapping[str, Any] | JobValues | None = None,
        guard: Callable[[JobRecord], None] | None = None,
        cursor: EventCursor | None = None,
        events_before: Sequence[EventDraft] = (),
        merges: Sequence[DocWrite] | Callable[[JobRecord], Sequence[DocWrite]] = (),
    ) -> JobRecord:
        """Move a job to `target` if that is legal from its current state (and, when given,
        the current state is one of `expected` and `guard` does not raise). `fields`,
        `event_data` and `merges` may be computed from the job as read, so a caller that needs
        the job to know them does not read it first. `events_before` are appended in the same write,
        ahead of the state change's own event."""
        allowed = frozenset(expected) if expected is not None else None

        def decide(job: JobRecord) -> Mutation:
            if allowed is not None and job.status not in allowed:
                raise IllegalTransition(
                    f"job {job_id} is {job.status.value}, expected one of "
                    f"{sorted(s.value for s in allowed)}",
                    extra={"job_id": job_id, "from": job.status.value, "to": target.value},
                )
            check_transition(job_id, job.status, target)
            if guard is not None:
                guard(job)
            changes = dict(fields(job) if callable(fields) else fields or {})
            status, why = target, reason
            if target is JobStatus.QUEUED and job.cancel_requested:
                # Someone asked to cancel it: back in the queue no worker would claim it
                # (claims refuse it), so it would cycle between queued and dispatched until
                # its deadline. It ends here as the cancel asked.
                status = JobStatus.CANCELLED
                why = f"{reason}; cancelled as requested" if reason else "cancelled as requested"
                changes["error"] = JobError(code="cancelled", message="cancelled by request")
            mutation = self._transition_mutation(
                job,
                status,
                changes,
                why,
                event_data(job) if callable(event_data) else event_data,
            )
            mutation.events[:0] = events_before
            mutation.merges.extend(merges(job) if callable(merges) else merges)
            return mutation

        return self.mutate(job_id, decide, cursor=cursor)

    def _transition_mutation(
        self,
        job: JobRecord,
        target: JobStatus,
        fields: Mapping[str, Any] | None,
        reason: str | None,
        event_data: Mapping[str, Any] | None,
    ) -> Mutation:
        now = self._clock()
        changes: dict[str, Any] = {"status": target}
        if target is JobStatus.DISPATCHED:
            changes["dispatched_at"] = now
        elif target is JobStatus.RUNNING:
            changes["started_at"] = now
        elif target is JobStatus.QUEUED:
            changes["lease_owner"] = None
        if target.terminal:
            changes.update(finished_at=now, lease_owner=None)
        changes.update(fields or {})
        extra = dict(event_data or {})
        extra.setdefault("attempt", changes.get("attempt", job.attempt))
        if target.terminal:
            extra.setdefault("channel", job.channel.value)
        event = status_event(job.status, target, reason=reason, **extra)
        mutation = Mutation(fields=changes, events=[event])
        if job.status is JobStatus.RUNNING and target is not JobStatus.RUNNING:
            # The run is over (or handed back): its lease goes in the same write.
            mutation.merges.append(DocDelete(self.lease_ref(job.job_id)))
        return mutation

    def claim(
        self,
        job_id: str,
        *,
        worker_id: str,
        lease_s: int,
        cursor: EventCursor | None = None,
    ) -> JobRecord:
        """dispatched → running for this worker, starting a new attempt with a lease."""

        def decide(job: JobRecord) -> Mutation:
            if job.status is not JobStatus.DISPATCHED:
                raise IllegalTransition(
                    f"job {job_id} is {job.status.value}, not dispatched",
                    extra={"job_id": job_id, "from": job.status.value, "to": "running"},
                )
            if job.cancel_requested:
                raise IllegalTransition(f"job {job_id} was cancelled before it started")
            attempt = job.attempt + 1
            fields = {"attempt": attempt, "lease_owner": worker_id}
            mutation = self._transition_mutation(
                job, JobStatus.RUNNING, fields, None, {"worker": worker_id, "attempt": attempt}
            )
            lease = self._lease_fields(job_id, worker_id, attempt, lease_s)
            mutation.merges.append(DocMerge(self.lease_ref(job_id), lease))
            return mutation

        return self.mutate(job_id, decide, cursor=cursor)

    def heartbeat(
        self,
        job_id: str,
        *,
        worker_id: str,
        attempt: int,
        lease_s: int,
        cursor: EventCursor | None = None,
    ) -> JobRecord:
        """Renew the lease. Raises LeaseLost if the job moved on or another worker owns it.

        Writes only the lease document; the job is read (to check the lease holder and to learn
        of a cancel request) but not written. With `cursor`, the job as read is remembered, so
        the run's final write stays read-free even if someone else changed the job meanwhile."""
        job_ref, lease_ref = self._jobs.document(job_id), self.lease_ref(job_id)
        for n in range(MAX_WRITE_RETRIES):
            snaps = {
                s.reference.path: s
                for s in self._call(lambda: list(self._client.get_all([job_ref, lease_ref])))
            }
            job_snap, lease_snap = snaps[job_ref.path], snaps[lease_ref.path]
            doc = job_snap.to_dict() if job_snap.exists else None
            if doc is None:
                raise LeaseLost(f"job {job_id} no longer exists")
            job = decode_record(doc)
            if job.status is not JobStatus.RUNNING:
                raise LeaseLost(f"job {job_id} is no longer running")
            check_lease(job, worker_id, attempt)
            batch = self._client.batch()
            lease = self._lease_fields(job_id, worker_id, attempt, lease_s)
            if lease_snap.exists:
                # Guarded: a sweeper that found the lease expired and released it wins.
                option = self._client.write_option(last_update_time=lease_snap.update_time)
                batch.update(lease_ref, lease, option=option)
            else:
                # A job claimed before leases had their own document: it gets one now.
                batch.create(lease_ref, lease)
            try:
                self._call(batch.commit)
            except _RACE_ERRORS:
                _backoff(n)
                continue
            if cursor is not None:
                cursor.remember_job(doc, job_snap.update_time)
            return job
        raise DependencyUnavailable(f"job {job_id} is too contended to renew its lease")

    def lease_ref(self, job_id: str) -> Any:
        return self._leases.document(job_id)

    def _lease_fields(
        self, job_id: str, worker_id: str, attempt: int, lease_s: int
    ) -> dict[str, Any]:
        now = self._clock()
        expires = now + timedelta(seconds=lease_s)
        return {
            "job_id": job_id,
            "worker": worker_id,
            "attempt": attempt,
            "renewed_at": now,
            "expires_at": expires,
            # Every way out of `running` deletes the lease; TTL is the backstop.
            "expire_at": expires + LEASE_TTL,
        }

    def get_lease(self, job_id: str) -> Lease | None:
        snap = self._call(lambda: self.lease_ref(job_id).get())
        return _decode_lease(snap) if snap.exists else None

    def expired_leases(self, before: datetime, *, limit: int = 100) -> list[Lease]:
        """Leases that ran out before `before` (sweeper)."""
        query = self._leases.where(filter=firestore.FieldFilter("expires_at", "<", before)).limit(
            limit
        )
        return [_decode_lease(s) for s in self._call(lambda: list(query.stream()))]

    def drop_lease(self, lease: Lease) -> None:
        """Delete a lease left behind by no running attempt, unless it changed since read
        (then a new claim owns the document)."""
        option = self._client.write_option(last_update_time=lease.update_time)
        with contextlib.suppress(*_RACE_ERRORS):
            self._call(lambda: self.lease_ref(lease.job_id).delete(option=option))

    def request_cancel(self, job_id: str, *, reason: str = "cancelled by request") -> JobRecord:
        """Cancel a job that has not started, or flag a running one for its worker to stop."""

        def decide(job: JobRecord) -> Mutation | None:
            if job.status.terminal:
                return None
            # Checked before the flag: a job not running is cancelled outright, even one
            # flagged by an earlier request while it ran.
            if job.status in (JobStatus.QUEUED, JobStatus.DISPATCHED):
                mutation = self._transition_mutation(
                    job, JobStatus.CANCELLED, {"cancel_requested": True}, reason, None
                )
                mutation.fields["error"] = JobError(code="cancelled", message=reason)
                return mutation
            if job.cancel_requested:
                return None
            return Mutation(
                fields={"cancel_requested": True}, merges=self.cancel_signal(job, reason)
            )

        return self.mutate(job_id, decide)

    def finish(
        self,
        job_id: str,
        target: JobStatus,
        *,
        worker_id: str,
        attempt: int,
        result: JobResult | None = None,
        error: JobError | None = None,
        reason: str | None = None,
        cursor: EventCursor | None = None,
        events: Sequence[EventDraft] = (),
        merges: Sequence[DocMerge] = (),
    ) -> JobRecord:
        """running → terminal, only by the worker holding this attempt's lease, with the
        run's last unwritten `events` and any `merges` in the same write. With the worker's
        event cursor the usual case is one write and no read."""
        return self.transition(
            job_id,
            target,
            expected=[JobStatus.RUNNING],
            guard=lambda job: check_lease(job, worker_id, attempt),
            fields={"result": result, "error": error},
            reason=reason,
            event_data={"exit_code": result.exit_code if result else None},
            cursor=cursor,
            events_before=events,
            merges=merges,
        )

    # ---- events --------------------------------------------------------------------------

    def append_events(
        self, job_id: str, drafts: list[EventDraft], *, cursor: EventCursor | None = None
    ) -> list[JobEvent]:
        """Append events in order, atomically with the job's event head.

        Only the head document is written, never the job document: a chatty job does not fire
        the job-document trigger or wake the job's listeners with every batch. With a cursor
        from the previous call the first try needs no read (the worker's hot path); a stale
        cursor costs one re-read.
        """
        if not drafts:
            return []
        if cursor is not None and cursor.head_known:
            try:
                return self._append(job_id, drafts, cursor)
            except _RACE_ERRORS:
                pass
        state = cursor if cursor is not None else EventCursor()
        for attempt in range(MAX_WRITE_RETRIES):
            self._read(job_id, state)
            try:
                return self._append(job_id, drafts, state)
            except _RACE_ERRORS:
                _backoff(attempt)
        raise DependencyUnavailable(f"job {job_id} is too contended to append events")

    def _append(self, job_id: str, drafts: list[EventDraft], state: EventCursor) -> list[JobEvent]:
        events, _, head_time = self._write(job_id, None, drafts, state)
        state.remember_head(state.next_seq + len(drafts), head_time)
        return events

    def _read(self, job_id: str, state: EventCursor) -> None:
        """Read the job and its event head in one round trip into `state`."""
        refs = [self._jobs.document(job_id), self._head_ref(job_id)]
        snaps = {s.reference.path: s for s in self._call(lambda: list(self._client.get_all(refs)))}
        job, head = snaps[refs[0].path], snaps[refs[1].path]
        if not job.exists:
            raise NotFound(f"job {job_id} not found")
        state.remember_read(job, head)

    def _commit(
        self, job_id: str, record: JobRecord, mutation: Mutation, state: EventCursor
    ) -> JobRecord:
        """Write a decided mutation guarded by what `state` knows; leave `state` after it."""
        assert state.doc is not None
        fields = _encode_record_fields({**mutation.fields, "updated_at": self._clock()})
        if mutation.events:
            # The job keeps the head's value as of its last state change (readers of the job
            # alone, e.g. the dispatcher naming a task, get the seq of that change).
            fields["next_seq"] = state.next_seq + len(mutation.events)
        # A claim's status event carries the attempt it starts; `state` learns it only once the
        # write has succeeded.
        attempt = int(fields.get("attempt", record.attempt))
        _, job_time, head_time = self._write(
            job_id, fields, mutation.events, state, attempt, mutation.merges
        )
        if mutation.events:
            state.remember_head(state.next_seq + len(mutation.events), head_time)
        state.remember_job({**state.doc, **fields}, job_time)
        return state.record()

    def _write(
        self,
        job_id: str,
        fields: Mapping[str, Any] | None,
        drafts: list[EventDraft],
        state: EventCursor,
        attempt: int | None = None,
        merges: Sequence[DocWrite] = (),
    ) -> tuple[list[JobEvent], Any, Any]:
        """One atomic batch: the job update (when `fields`, guarded by `state.job_time`), and
        with events the head update (guarded by `state.head_time`, or created) plus the event
        documents numbered from `state.next_seq`. Returns the events and the new update times
        of the job and the head (None for what was not written)."""
        now = self._clock()
        events = [
            JobEvent(
                seq=state.next_seq + i,
                job_id=job_id,
                message_type=d.message_type,
                data=d.data,
                codex=d.codex,
                timestamp=now,
                attempt=state.attempt if attempt is None else attempt,
            )
            for i, d in enumerate(drafts)
        ]
        batch = self._client.batch()
        if fields is not None:
            batch.update(
                self._jobs.document(job_id),
                dict(fields),
                option=self._client.write_option(last_update_time=state.job_time),
            )
        if events:
            head = {"next_seq": state.next_seq + len(events), "updated_at": now}
            if state.head_time is None:
                add_create(batch, self._head_ref(job_id), head)
            else:
                batch.update(
                    self._head_ref(job_id),
                    head,
                    option=self._client.write_option(last_update_time=state.head_time),
                )
        for event in events:
            add_create(
                batch, self._event_ref(job_id, event.seq), _encode_event(event, self._event_ttl)
            )
        # After the job and head: the result indexes below stay valid. One write per
        # document: a later entry for the same document replaces an earlier one.
        for other in {m.ref.path: m for m in merges}.values():
            if isinstance(other, DocDelete):
                option = None
                if other.last_update_time is not None:
                    option = self._client.write_option(last_update_time=other.last_update_time)
                batch.delete(other.ref, option=option)
            else:
                batch.set(other.ref, dict(other.data), merge=True)
        results = self._call(batch.commit)
        job_time = results[0].update_time if fields is not None else None
        head_time = results[1 if fields is not None else 0].update_time if events else None
        return events, job_time, head_time

    def cancel_signals(self, worker_id: str) -> Any:
        """The worker's cancel mailbox: one document per job it holds that should stop, written
        with the job's `cancel_requested` flag. The worker listens to this small collection
        rather than to a query over all jobs: the Firestore emulator re-runs every listening
        query against the whole collection on each job write (a few ms per listener per write
        at a few hundred jobs, growing with the collection)."""
        return (
            self._client.collection(self._settings.workers_collection)
            .document(worker_id)
            .collection(self._settings.topology.firestore.cancels_subcollection)
        )

    def cancel_signal_ref(self, worker_id: str, job_id: str) -> Any:
        return self.cancel_signals(worker_id).document(job_id)

    def cancel_signal(self, job: JobRecord, reason: str) -> list[DocWrite]:
        """The signal telling the worker that holds a running `job` to stop (none when nobody
        holds it), to ride in the write that sets `cancel_requested`."""
        if job.status is not JobStatus.RUNNING or not job.lease_owner:
            return []
        now = self._clock()
        signal = {
            "job_id": job.job_id,
            "attempt": job.attempt,
            "reason": reason,
            "requested_at": now,
            "expire_at": now + CANCEL_SIGNAL_TTL,
        }
        return [DocMerge(self.cancel_signal_ref(job.lease_owner, job.job_id), signal)]

    # ---- helpers -------------------------------------------------------------------------

    def _events(self, job_id: str) -> Any:
        return self._jobs.document(job_id).collection(self._events_name)

    def _head_ref(self, job_id: str) -> Any:
        return self._jobs.document(job_id).collection(self._stream_name).document(HEAD_DOC)

    def _event_ref(self, job_id: str, seq: int) -> Any:
        return self._events(job_id).document(event_id_for(seq))

    @staticmethod
    def _call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        except gexc.InvalidArgument as exc:
            # A write or read Firestore refuses (a document over 1 MiB, a reserved id): retrying
            # cannot help, so it is a permanent error callers already handle, not a crash.
            log.warning("job store refused a request", extra={"fields": {"error": exc.message}})
            raise InvalidInput("the job store refused the request as invalid") from exc


def unavailable(exc: Exception) -> DependencyUnavailable:
    """What a Firestore outage becomes (a 503 with Retry-After at the API)."""
    return DependencyUnavailable(f"job store unavailable: {type(exc).__name__}")


def _backoff(attempt: int) -> None:
    # Jittered, short: losers of a race retry quickly but do not stampede.
    time.sleep(min(0.2, 0.005 * (2**attempt)) * (0.5 + random.random()))  # noqa: S311


def _encode_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise NotFound("invalid cursor") from None
    if not value or "/" in value:
        raise NotFound("invalid cursor")
    return value
