"""The worker's event batcher against the real Firestore emulator: events reach the store in
order, and at the end of a run the unwritten tail is handed to the final write."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.adapters import Adapters
from shared.jobstore import EventCursor, JobStore
from shared.models import Channel, EventDraft, JobRequest, JobStatus, MessageType
from worker.events import EventBatcher
from worker.jobrunner import JobRunner


def _running_job(store: JobStore) -> tuple[str, EventCursor]:
    job_id = store.create_job(JobRequest(prompt="p"), tenant="t1", channel=Channel.HTTP).job.job_id
    store.transition(job_id, JobStatus.DISPATCHED)
    cursor = EventCursor()
    store.claim(job_id, worker_id="w1", lease_s=30, cursor=cursor)
    return job_id, cursor


def _output(n: int) -> EventDraft:
    return EventDraft(message_type=MessageType.OUTPUT, data={"n": n})


def test_detach_hands_back_the_unwritten_tail_for_the_final_write(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id, cursor = _running_job(store)

    async def run() -> list[EventDraft]:
        # A long flush window: the first events are written only because the batch fills.
        batcher = EventBatcher(store, job_id, flush_s=5.0, max_batch=3, cursor=cursor)
        for n in range(5):
            await batcher.add(_output(n))
        return await batcher.detach()

    tail = asyncio.run(run())
    assert [d.data["n"] for d in tail] == [3, 4]  # 0-2 went out as a full batch
    written = store.list_events(job_id, after_seq=2)  # queued, dispatched, running
    assert [e.data["n"] for e in written] == [0, 1, 2]

    done = store.finish(
        job_id, JobStatus.SUCCEEDED, worker_id="w1", attempt=1, cursor=cursor, events=tail
    )
    assert done.status is JobStatus.SUCCEEDED
    events = store.list_events(job_id)
    assert [e.seq for e in events] == list(range(len(events)))
    assert [e.data.get("n") for e in events[3:-1]] == [0, 1, 2, 3, 4]
    assert events[-1].message_type is MessageType.COMPLETE
    assert {e.attempt for e in events[3:]} == {1}


def test_close_writes_everything_queued(isolated_adapters: Adapters) -> None:
    store = isolated_adapters.jobs
    job_id, cursor = _running_job(store)

    async def run() -> None:
        batcher = EventBatcher(store, job_id, flush_s=0.01, max_batch=50, cursor=cursor)
        for n in range(7):
            await batcher.add(_output(n))
        await batcher.close()
        assert batcher.closed
        assert batcher.written == 7

    asyncio.run(run())
    assert [e.data["n"] for e in store.list_events(job_id, after_seq=2)] == list(range(7))


def test_a_lone_event_goes_out_at_once_and_a_burst_waits_for_the_write_interval(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id, cursor = _running_job(store)

    def stored() -> list[int]:
        return [e.data["n"] for e in store.list_events(job_id, after_seq=2)]

    async def run() -> EventBatcher:
        batcher = EventBatcher(
            store, job_id, flush_s=0.01, max_batch=50, min_interval_s=30.0, cursor=cursor
        )
        await batcher.add(_output(0))
        await asyncio.sleep(0.5)
        assert await asyncio.to_thread(stored) == [0]  # after a quiet spell: within flush_s
        for n in (1, 2, 3):
            await batcher.add(_output(n))
        await asyncio.sleep(0.5)
        # Held back: the previous write began less than the interval ago.
        assert await asyncio.to_thread(stored) == [0]
        await batcher.close()
        return batcher

    batcher = asyncio.run(run())
    assert stored() == [0, 1, 2, 3]
    assert batcher.writes == 2  # the burst went out as one write


def test_events_taken_for_a_final_write_that_never_came_are_still_written(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id, cursor = _running_job(store)
    runner = JobRunner(isolated_adapters, Path("/bin/true"), "w1")

    async def run() -> None:
        batcher = EventBatcher(store, job_id, flush_s=5.0, max_batch=50, cursor=cursor)
        for n in (1, 2):
            await batcher.add(_output(n))
        # The runner took the tail for its final write, which then failed (say, a lost lease).
        unwritten = asyncio.create_task(batcher.detach())
        await runner._write_leftover_events(job_id, unwritten, batcher.cursor)

    asyncio.run(run())
    assert [e.data["n"] for e in store.list_events(job_id, after_seq=2)] == [1, 2]


def _command_output(text: str) -> dict[str, object]:
    return {
        "type": "item.completed",
        "item": {
            "id": "item_1",
            "type": "command_execution",
            "command": "cat big.log",
            "aggregated_output": text,
            "exit_code": 0,
            "status": "completed",
        },
    }


def test_a_command_printing_megabytes_does_not_stop_the_stream(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id, cursor = _running_job(store)
    huge = "x" * 3_000_000  # three times Firestore's document limit

    async def run() -> EventBatcher:
        batcher = EventBatcher(store, job_id, flush_s=0.01, max_batch=50, cursor=cursor)
        await batcher.add_codex_record(_command_output(huge))
        await batcher.add_codex_record({"type": "turn.completed", "usage": {"input_tokens": 1}})
        await batcher.close()
        return batcher

    batcher = asyncio.run(run())
    assert batcher.dropped == 0
    events = store.list_events(job_id, after_seq=2)
    assert [e.message_type for e in events] == [MessageType.OUTPUT, MessageType.COMPLETE]
    record = events[0].codex
    assert record is not None
    stored = record["item"]["aggregated_output"]
    assert stored.startswith("xxx")
    assert "more chars" in stored
    assert len(stored) < 10_000
    # The artifact's copy (events.jsonl) keeps the record whole.
    assert batcher.raw[0]["item"]["aggregated_output"] == huge


def test_a_batch_the_store_refuses_is_dropped_and_later_events_still_go_out(
    isolated_adapters: Adapters,
) -> None:
    store = isolated_adapters.jobs
    job_id, cursor = _running_job(store)

    async def run() -> EventBatcher:
        batcher = EventBatcher(store, job_id, flush_s=0.01, max_batch=50, cursor=cursor)
        # Past the 1 MiB document limit: refused, not an outage to retry 20 times.
        await batcher.add(
            EventDraft(message_type=MessageType.OUTPUT, data={"blob": "y" * 1_100_000})
        )
        await asyncio.sleep(0.5)
        await batcher.add(_output(7))
        await batcher.close()
        return batcher

    batcher = asyncio.run(run())
    assert batcher.dropped == 1
    events = store.list_events(job_id, after_seq=2)
    assert [e.data.get("n") for e in events] == [7]
