"""The API's event feed against the emulator: events arrive through the listener, and a
quiet tick or a gap in the sequence reads what is stored, so an event the listener missed
still arrives, in order."""

from __future__ import annotations

import asyncio

from api.watch import EventFeed, Listeners
from shared.adapters import Adapters
from shared.models import Channel, EventDraft, JobRequest, MessageType


def _job_with_feed(adapters: Adapters) -> tuple[str, EventFeed]:
    job = adapters.jobs.create_job(JobRequest(prompt="p"), tenant="t1", channel=Channel.HTTP).job
    return job.job_id, Listeners(adapters.firestore, adapters.settings).events(job.job_id, 0)


def _append(adapters: Adapters, job_id: str, *texts: str) -> None:
    drafts = [EventDraft(message_type=MessageType.OUTPUT, data={"text": t}) for t in texts]
    adapters.jobs.append_events(job_id, drafts)


def test_events_arrive_through_the_listener(isolated_adapters: Adapters) -> None:
    job_id, feed = _job_with_feed(isolated_adapters)

    async def scenario() -> list[str]:
        async with feed:
            await asyncio.to_thread(_append, isolated_adapters, job_id, "a", "b")
            got: list[str] = []
            while len(got) < 2:
                got += [e.data["text"] for e in await feed.next_batch(5.0)]
            return got

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_feed_whose_listener_died_still_delivers_stored_events_at_the_next_tick(
    isolated_adapters: Adapters,
) -> None:
    job_id, feed = _job_with_feed(isolated_adapters)

    async def scenario() -> tuple[list[int], list[int]]:
        async with feed:
            feed._watch.unsubscribe()  # the listener's stream is gone; nothing will arrive
            await asyncio.to_thread(_append, isolated_adapters, job_id, "a", "b")
            first = [e.seq for e in await feed.next_batch(0.2)]
            again = [e.seq for e in await feed.next_batch(0.2)]
            return first, again

    first, again = asyncio.run(scenario())
    assert first == [1, 2]  # after the queued event (seq 0), in order
    assert again == []  # delivered once


def test_an_event_the_listener_skipped_arrives_before_the_later_ones(
    isolated_adapters: Adapters,
) -> None:
    job_id, feed = _job_with_feed(isolated_adapters)
    _append(isolated_adapters, job_id, "a", "b", "c")

    async def scenario() -> list[int]:
        later = await asyncio.to_thread(
            isolated_adapters.jobs.list_events, job_id, after_seq=2, limit=10
        )
        # The listener hands over only the newest event, as when its first snapshot missed
        # the ones written just before it.
        feed._queue.put_nowait(list(later))
        first = [e.seq for e in await feed.next_batch(5.0)]
        return first

    # Regression: the feed moved past seq 1 and 2, and a client never saw them.
    assert asyncio.run(scenario()) == [1, 2, 3]
