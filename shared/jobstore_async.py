"""The job store's submission path on asyncio: create a job, read one back.

The API's submit route runs on an event loop. Through the blocking client every submission
paid a hop to a worker thread and back, and the thread pool's GIL hand-offs, on top of the
write itself. Only what that route needs lives here; everything else stays in `JobStore`,
which also builds the documents (`prepare_job`) so both paths write the same thing.
Creates go through a group committer (`shared.group_commit`): when `commit_concurrency`
commits are already under way, the submissions that arrive meanwhile share the next one.
"""

from __future__ import annotations

import asyncio

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.async_client import AsyncClient
from google.cloud.firestore_v1.types import write

from shared.adapters.firestore_writes import create_writes
from shared.group_commit import GroupCommitter
from shared.jobstore import (
    UNAVAILABLE_ERRORS,
    CreateOutcome,
    JobStore,
    NewJob,
    decode_record,
    unavailable,
)
from shared.models import JobRecord, is_safe_id


class AsyncJobWriter:
    def __init__(self, client: AsyncClient, store: JobStore, *, commit_concurrency: int) -> None:
        self._client = client
        self._store = store
        self._jobs = client.collection(store.jobs_collection)
        self._committer: GroupCommitter[write.Write] = GroupCommitter(
            self._commit,
            size=lambda w: int(w._pb.ByteSize()),
            # The database being unavailable fails every unit alike: no point in retrying
            # them one by one (the commit has already retried).
            shared_failure=lambda exc: isinstance(exc, UNAVAILABLE_ERRORS),
            max_in_flight=commit_concurrency,
        )

    @property
    def committer(self) -> GroupCommitter[write.Write]:
        return self._committer

    async def _commit(self, writes: list[write.Write]) -> None:
        batch = self._client.batch()
        batch._add_write_pbs(writes)
        await batch.commit()

    async def create(self, new: NewJob) -> CreateOutcome:
        """Create the prepared job, or settle on the existing one (as `JobStore.create_job`)."""
        document = self._client.document
        writes = [
            *create_writes(document(new.job_path)._document_path, new.job_fields),
            *create_writes(document(new.event_path)._document_path, new.event_fields),
        ]
        try:
            await self._committer.commit(writes)
        except gexc.Conflict:
            # Rare (a replayed idempotency key racing its first use): the blocking path is fine.
            return await asyncio.to_thread(self._store.settle_conflict, new)
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        return CreateOutcome(new.record, created=True)

    async def get_job(self, job_id: str) -> JobRecord | None:
        if not is_safe_id(job_id):  # as JobStore.get_job: such an id names no job
            return None
        try:
            snap = await self._jobs.document(job_id).get()
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        data = snap.to_dict()
        return decode_record(data) if snap.exists and data is not None else None
