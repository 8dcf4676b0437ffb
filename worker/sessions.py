"""Follow-up turns on any worker: after each turn the codex session state and the workspace
are saved to the sessions bucket and indexed in `sessions/{session_id}` (by the job's final
write); before a resumed turn they are restored, so `codex exec resume` works wherever the job
lands.

Each attempt of each turn saves under its own prefix (`{session_id}/{job_id}-{attempt}/`) and
the index names the prefix of the turn it records. An attempt whose final write never lands
(lease lost, timed out meanwhile) or a turn running beside another of the same session thus
never overwrites the state the index points at: the session is always the last recorded turn.
"""

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
    # Where the recorded turn's archives are; "" for an index written before turns had their
    # own prefix (the archives then sit at the session's root).
    prefix: str = ""

    def object_name(self, name: str) -> str:
        return f"{self.session_id}/{self.prefix}{name}"


def turn_prefix(job_id: str, attempt: int) -> str:
    return f"{job_id}-{attempt}/"


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
            prefix=str(doc.get("prefix") or ""),
        )

    def fetch_state(self, session: SessionState) -> bytes:
        return self._blobs.get(self._bucket, session.object_name(STATE_OBJECT))

    def fetch_workspace(self, session: SessionState) -> bytes | None:
        name = session.object_name(WORKSPACE_OBJECT)
        if self._blobs.stat(self._bucket, name) is None:
            return None
        return self._blobs.get(self._bucket, name)

    def upload(
        self,
        session_id: str,
        prefix: str,
        *,
        state: bytes | None,
        workspace: bytes | None,
        pool: Executor | None = None,
    ) -> None:
        """Upload the archives of a turn under its own `prefix` (side by side when given a
        pool; None: already uploaded). The index is written after this (see `index`), so a
        resume never finds it pointing at missing objects."""
        uploads = [
            (name, data)
            for name, data in ((STATE_OBJECT, state), (WORKSPACE_OBJECT, workspace))
            if data is not None
        ]

        def put(name: str, data: bytes) -> None:
            self._blobs.put(
                self._bucket,
                f"{session_id}/{prefix}{name}",
                data,
                content_type="application/gzip",
            )

        if pool is None:
            for name, data in uploads:
                put(name, data)
        else:
            for future in [pool.submit(put, name, data) for name, data in uploads]:
                future.result()

    def index(
        self,
        *,
        session_id: str,
        prefix: str,
        tenant: str,
        thread_id: str,
        job_id: str,
        worker_id: str,
    ) -> DocMerge:
        """The index update of a saved turn, for the job's final write to carry: the session
        moves on exactly when the job's turn is recorded, in one atomic write."""
        return DocMerge(
            self._docs.document(session_id),
            {
                "tenant": tenant,
                "thread_id": thread_id,
                "prefix": prefix,
                "last_job_id": job_id,
                "worker_id": worker_id,
                "turns": firestore.Increment(1),
                "updated_at": datetime.now(UTC),
            },
        )
