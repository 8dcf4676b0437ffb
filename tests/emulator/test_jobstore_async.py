"""The asyncio submission path against the real Firestore emulator: the same jobs, the same
idempotency answers as the blocking `JobStore.create_job`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from api.activejobs import count_active_jobs
from shared.adapters import Adapters
from shared.adapters.firestore import make_async_firestore_client
from shared.errors import Conflict
from shared.jobstore import CreateOutcome, NewJob
from shared.jobstore_async import AsyncJobWriter
from shared.models import Channel, JobRequest, JobStatus

T = TypeVar("T")


def _with_writer(
    adapters: Adapters,
    body: Callable[[AsyncJobWriter], Awaitable[T]],
    *,
    commit_concurrency: int = 4,
) -> T:
    async def scenario() -> T:
        # The asyncio client belongs to the loop it is made on.
        writer = AsyncJobWriter(
            make_async_firestore_client(adapters.settings),
            adapters.jobs,
            commit_concurrency=commit_concurrency,
        )
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


def test_concurrent_creates_share_commits_and_every_job_lands_whole(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    news = [
        store.prepare_job(JobRequest(prompt=f"job {n}"), tenant="t1", channel=Channel.HTTP)
        for n in range(12)
    ]

    async def body(writer: AsyncJobWriter) -> tuple[list[bool], int]:
        outcomes = await asyncio.gather(*(writer.create(new) for new in news))
        return [o.created for o in outcomes], writer.committer.batches

    created, batches = _with_writer(isolated_adapters, body, commit_concurrency=1)

    assert created == [True] * 12
    assert batches < 12  # the eleven that queued behind the first went out together
    for new in news:
        job = store.require_job(new.record.job_id)
        assert (job.status, job.request.prompt) == (JobStatus.QUEUED, new.record.request.prompt)
        assert [e.seq for e in store.list_events(job.job_id)] == [0]


def test_a_conflict_in_a_shared_commit_is_only_that_submissions_answer(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs

    def prepare(prompt: str, key: str | None = None) -> NewJob:
        return store.prepare_job(
            JobRequest(prompt=prompt), tenant="t1", channel=Channel.HTTP, idempotency_key=key
        )

    first = store.create_job(
        JobRequest(prompt="same"), tenant="t1", channel=Channel.HTTP, idempotency_key="k1"
    ).job
    lead, replay, clash, fresh = (
        prepare("lead"),
        prepare("same", "k1"),
        prepare("x", "k1"),
        prepare("y"),
    )

    async def body(writer: AsyncJobWriter) -> list[object]:
        return await asyncio.gather(
            *(writer.create(new) for new in (lead, replay, clash, fresh)),
            return_exceptions=True,
        )

    answers = _with_writer(isolated_adapters, body, commit_concurrency=1)

    lead_out, replay_out, clash_out, fresh_out = answers
    assert isinstance(lead_out, CreateOutcome)
    assert lead_out.created
    assert isinstance(replay_out, CreateOutcome)
    assert (replay_out.created, replay_out.job.job_id) == (False, first.job_id)
    assert isinstance(clash_out, Conflict)
    assert isinstance(fresh_out, CreateOutcome)
    assert fresh_out.created
    assert store.require_job(fresh.record.job_id).request.prompt == "y"


def test_a_tenants_active_jobs_are_counted_up_to_the_cap(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    for n in range(5):
        store.create_job(JobRequest(prompt=f"a{n}"), tenant="t1", channel=Channel.HTTP)
    for n in range(2):
        done = store.create_job(JobRequest(prompt=f"c{n}"), tenant="t1", channel=Channel.HTTP)
        store.transition(done.job.job_id, JobStatus.CANCELLED)
    store.create_job(JobRequest(prompt="other"), tenant="t2", channel=Channel.HTTP)

    def count(up_to: int) -> int:
        return count_active_jobs(
            isolated_adapters.firestore, isolated_adapters.settings, "t1", up_to=up_to
        )

    assert count(100) == 5  # the cancelled ones and the other tenant's job are not counted
    assert count(3) == 3  # past the cap, the count stops there
