"""Follow-up turns on any worker: after each turn the codex session state and the workspace
are saved to the sessions bucket and indexed in `sessions/{session_id}` (by the job's final
write); before a resumed turn they are restored, so `codex exec resume` works wherever the job
lands."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from shared.adapters.storage import BlobStore
from shared.errors import PermanentError
from shared.jobstore import DocMerge

SESSIONS_COLLECTION = "sessions"
STATE_OBJECT = "codex-state.tar.gz"
WORKSPACE_OBJECT = "workspace.tar.gz"


class SessionError(PermanentError):
    code = "session-error"
    title = "Session cannot be resumed"


@dataclass(frozen=True)
class SessionState:
    session_id: str
    tenant: str
    thread_id: str | None
    turns: int
    last_job_id: str | None


class SessionStore:
    def __init__(self, client: firestore.Client, blobs: BlobStore, bucket: str) -> None:
        self._docs = client.collection(SESSIONS_COLLECTION)
        self._blobs = blobs
        self._bucket = bucket

    def load(self, session_id: str, tenant: str) -> SessionState | None:
        snap = self._docs.document(session_id).get()
        if not snap.exists:
            return None
        doc: dict[str, Any] = snap.to_dict() or {}
        if doc.get("tenant") != tenant:
            # Never resume another tenant's thread; do not say whose it is either.
            raise SessionError(f"session {session_id} cannot be used by this caller")
        return SessionState(
            session_id=session_id,
            tenant=tenant,
            thread_id=doc.get("thread_id"),
            turns=int(doc.get("turns") or 0),
            last_job_id=doc.get("last_job_id"),
        )

    def fetch_state(self, session_id: str) -> bytes:
        return self._blobs.get(self._bucket, f"{session_id}/{STATE_OBJECT}")

    def fetch_workspace(self, session_id: str) -> bytes | None:
        if self._blobs.stat(self._bucket, f"{session_id}/{WORKSPACE_OBJECT}") is None:
            return None
        return self._blobs.get(self._bucket, f"{session_id}/{WORKSPACE_OBJECT}")

    def upload(
        self, session_id: str, *, state: bytes, workspace: bytes, pool: Executor | None = None
    ) -> None:
        """Upload both archives of a turn (side by side when given a pool). The index is
        written after this (see `index`), so a resume never finds it pointing at missing
        objects."""
        uploads = [(STATE_OBJECT, state), (WORKSPACE_OBJECT, workspace)]

        def put(name: str, data: bytes) -> None:
            self._blobs.put(
                self._bucket, f"{session_id}/{name}", data, content_type="application/gzip"
            )

        if pool is None:
            for name, data in uploads:
                put(name, data)
        else:
            for future in [pool.submit(put, name, data) for name, data in uploads]:
                future.result()

    def index(
        self, *, session_id: str, tenant: str, thread_id: str, job_id: str, worker_id: str
    ) -> DocMerge:
        """The index update of a saved turn, for the job's final write to carry: the session
        moves on exactly when the job's turn is recorded, in one atomic write."""
        return DocMerge(
            self._docs.document(session_id),
            {
                "tenant": tenant,
                "thread_id": thread_id,
                "last_job_id": job_id,
                "worker_id": worker_id,
                "turns": firestore.Increment(1),
                "updated_at": datetime.now(UTC),
            },
        )
