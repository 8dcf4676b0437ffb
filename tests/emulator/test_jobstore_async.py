"""The asyncio submission path against the real Firestore emulator: the same jobs, the same
idempotency answers as the blocking `JobStore.create_job`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from shared.adapters import Adapters
from shared.adapters.firestore import make_async_firestore_client
from shared.errors import Conflict
from shared.jobstore_async import AsyncJobWriter
from shared.models import Channel, JobRequest, JobStatus

T = TypeVar("T")


def _with_writer(adapters: Adapters, body: Callable[[AsyncJobWriter], Awaitable[T]]) -> T:
    async def scenario() -> T:
        # The asyncio client belongs to the loop it is made on.
        writer = AsyncJobWriter(make_async_firestore_client(adapters.settings), adapters.jobs)
        return await body(writer)

    return asyncio.run(scenario())


def test_a_job_created_on_the_event_loop_reads_back_everywhere(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    new = store.prepare_job(JobRequest(prompt="hello"), tenant="t1", channel=Channel.HTTP)

    async def body(writer: AsyncJobWriter) -> tuple[bool, object]:
        outcome = await writer.create(new)
        return outcome.created, await writer.get_job(new.record.job_id)

    created, read_back = _with_writer(isolated_adapters, body)

    assert created
    assert read_back == new.record
    job = store.require_job(new.record.job_id)  # and through the blocking client
    assert (job.status, job.request.prompt, job.tenant) == (JobStatus.QUEUED, "hello", "t1")
    assert [e.seq for e in store.list_events(job.job_id)] == [0]


def test_an_idempotency_key_replays_or_conflicts_as_on_the_blocking_path(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    first = store.prepare_job(
        JobRequest(prompt="same"), tenant="t1", channel=Channel.HTTP, idempotency_key="k1"
    )
    again = store.prepare_job(
        JobRequest(prompt="same"), tenant="t1", channel=Channel.HTTP, idempotency_key="k1"
    )
    other = store.prepare_job(
        JobRequest(prompt="different"), tenant="t1", channel=Channel.HTTP, idempotency_key="k1"
    )

    async def body(writer: AsyncJobWriter) -> tuple[bool, bool, str]:
        made = await writer.create(first)
        replayed = await writer.create(again)
        with pytest.raises(Conflict):
            await writer.create(other)
        return made.created, replayed.created, replayed.job.job_id

    made, replayed, job_id = _with_writer(isolated_adapters, body)

    assert (made, replayed, job_id) == (True, False, first.record.job_id)
    # The replay is the stored job, not the second request's fresh record.
    assert store.require_job(job_id).created_at == first.record.created_at


@pytest.mark.parametrize("job_id", ["job_doesnotexist", "__main__", "a/b"])
def test_reading_a_job_that_is_not_there_gives_none(
    isolated_adapters: Adapters, job_id: str
) -> None:
    async def body(writer: AsyncJobWriter) -> object:
        return await writer.get_job(job_id)

    assert _with_writer(isolated_adapters, body) is None
