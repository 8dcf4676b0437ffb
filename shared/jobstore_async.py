"""The job store's submission path on asyncio: create a job, read one back.

The API's submit route runs on an event loop. Through the blocking client every submission
paid a hop to a worker thread and back, and the thread pool's GIL hand-offs, on top of the
write itself. Only what that route needs lives here; everything else stays in `JobStore`,
which also builds the documents (`prepare_job`) so both paths write the same thing.
"""

from __future__ import annotations

import asyncio

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.async_client import AsyncClient

from shared.adapters.firestore_writes import add_create
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
    def __init__(self, client: AsyncClient, store: JobStore) -> None:
        self._client = client
        self._store = store
        self._jobs = client.collection(store.jobs_collection)

    async def create(self, new: NewJob) -> CreateOutcome:
        """Create the prepared job, or settle on the existing one (as `JobStore.create_job`)."""
        batch = self._client.batch()
        add_create(batch, self._client.document(new.job_path), new.job_fields)
        add_create(batch, self._client.document(new.event_path), new.event_fields)
        try:
            await batch.commit()
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
