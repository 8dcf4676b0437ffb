"""Session saves against the Firestore emulator and fake-gcs-server: the index names the
archives of the turn it records, so an attempt that was never recorded changes nothing."""

from __future__ import annotations

import uuid

from shared.adapters import Adapters
from worker.sessions import SessionStore, turn_prefix


def _store(adapters: Adapters) -> SessionStore:
    return SessionStore(
        adapters.firestore, adapters.storage, adapters.settings.topology.bucket("sessions")
    )


def test_an_attempt_whose_final_write_never_landed_leaves_the_session_as_recorded(
    isolated_adapters: Adapters,
) -> None:
    sessions = _store(isolated_adapters)
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    recorded = turn_prefix("job-a", 1)
    sessions.upload(session_id, recorded, state=b"state of turn a", workspace=b"ws a")
    index = sessions.index(
        session_id=session_id,
        prefix=recorded,
        tenant="t1",
        thread_id="thread-1",
        job_id="job-a",
        worker_id="w1",
    )
    index.ref.set(index.data, merge=True)  # what the job's final write carries

    # The next turn saved its archives, then lost its lease: its final write (and with it the
    # index update) never happened.
    sessions.upload(
        session_id, turn_prefix("job-b", 1), state=b"state of turn b", workspace=b"ws b"
    )

    session = sessions.load(session_id, "t1")
    assert session is not None
    assert session.last_job_id == "job-a"
    assert sessions.fetch_state(session) == b"state of turn a"
    assert sessions.fetch_workspace(session) == b"ws a"
