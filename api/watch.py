"""Firestore listeners bridged into asyncio.

The sync Firestore client's `on_snapshot` runs callbacks on its own thread; the callbacks only
hand data to the event loop with `call_soon_threadsafe`, and every listener is closed (on a
worker thread: closing joins the listener's thread) when the waiting request ends or the client
disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.cloud import firestore
from starlette.concurrency import run_in_threadpool

from shared.jobstore import JobStore, decode_event, decode_record
from shared.models import JobEvent, JobRecord, JobStatus, MessageType
from shared.settings import Settings

log = logging.getLogger(__name__)

REPLAY_PAGE = 1000


async def stored_events(
    store: JobStore, job_id: str, after_seq: int = -1, *, page: int = REPLAY_PAGE
) -> AsyncIterator[JobEvent]:
    """Every stored event of a job after `after_seq`, in order, read a page at a time (the
    replay of a finished job, whose events can outnumber one page)."""
    cursor = after_seq
    while True:
        batch = await run_in_threadpool(store.list_events, job_id, after_seq=cursor, limit=page)
        for event in batch:
            yield event
            cursor = event.seq
        if len(batch) < page:
            return


def is_final_event(event: JobEvent) -> bool:
    """The `complete` event of a terminal state change (codex's own `turn.completed` is also a
    `complete` message, but carries no terminal status)."""
    if event.message_type is not MessageType.COMPLETE:
        return False
    status = event.data.get("status")
    try:
        return status is not None and JobStatus(status).terminal
    except ValueError:
        return False


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    # The loop may already be closed when a late snapshot arrives after the request ended.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _close_later(watch: Any) -> None:
    if watch is None:
        return
    loop = asyncio.get_running_loop()
    loop.run_in_executor(None, _unsubscribe, watch)


def _unsubscribe(watch: Any) -> None:
    try:
        watch.unsubscribe()
    except Exception:  # closing a broken stream must not fail the request
        log.debug("listener close failed", exc_info=True)


class Listeners:
    """Factory for the two listener kinds the API uses."""

    def __init__(self, client: firestore.Client, settings: Settings) -> None:
        names = settings.topology.firestore
        self._jobs = client.collection(names.jobs_collection)
        self._events_name = names.events_subcollection

    async def wait_terminal(self, job_id: str, timeout_s: float) -> JobRecord | None:
        """The job once it reaches a terminal state, or None when `timeout_s` runs out."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[JobRecord] = loop.create_future()

        def settle(record: JobRecord) -> None:
            if not done.done():
                done.set_result(record)

        def on_snapshot(docs: list[Any], _changes: Any, _read_time: Any) -> None:
            for doc in docs:
                if not doc.exists:
                    continue
                record = decode_record(doc.to_dict())
                if record.status.terminal:
                    _post(loop, settle, record)

        watch = self._jobs.document(job_id).on_snapshot(on_snapshot)
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout=timeout_s)
        except TimeoutError:
            return None
        finally:
            _close_later(watch)

    def events(self, job_id: str, after_seq: int) -> EventFeed:
        return EventFeed(self._jobs.document(job_id).collection(self._events_name), after_seq)


class EventFeed:
    """New events of one job, in sequence order, without duplicates.

    Use as `async with feed:`; `await feed.next_batch(timeout)` returns the next events (empty on
    timeout, so the caller can send a heartbeat).

    Events come from a listener; after a quiet tick the feed also reads what is stored, so an
    event the listener missed (its stream can drop and resume with a gap) still arrives, one
    tick late, instead of leaving a stream waiting forever for its final event.
    """

    def __init__(self, events: Any, after_seq: int) -> None:
        self._events = events  # the job's events collection
        self.last_seq = after_seq
        self._queue: asyncio.Queue[list[JobEvent]] = asyncio.Queue()
        self._watch: Any = None

    def _after(self, seq: int) -> Any:
        return self._events.where(filter=firestore.FieldFilter("seq", ">", seq)).order_by("seq")

    def _stored_after(self, seq: int) -> list[JobEvent]:
        try:
            return [decode_event(s.to_dict()) for s in self._after(seq).limit(1000).stream()]
        except Exception as exc:  # Firestore unreachable: the listener may still deliver
            log.warning("event catch-up read failed: %s", type(exc).__name__)
            return []

    async def __aenter__(self) -> EventFeed:
        loop = asyncio.get_running_loop()
        queue = self._queue

        def on_snapshot(_docs: Any, changes: list[Any], _read_time: Any) -> None:
            added = [
                decode_event(change.document.to_dict())
                for change in changes
                if change.type.name == "ADDED"
            ]
            if added:
                _post(loop, queue.put_nowait, added)

        self._watch = self._after(self.last_seq).on_snapshot(on_snapshot)
        return self

    async def __aexit__(self, *exc: object) -> None:
        _close_later(self._watch)
        self._watch = None

    async def next_batch(self, timeout_s: float) -> list[JobEvent]:
        try:
            batch = await asyncio.wait_for(self._queue.get(), timeout=timeout_s)
        except TimeoutError:
            batch = await asyncio.to_thread(self._stored_after, self.last_seq)
        while not self._queue.empty():
            batch.extend(self._queue.get_nowait())
        fresh = sorted((e for e in batch if e.seq > self.last_seq), key=lambda e: e.seq)
        if fresh and fresh[0].seq > self.last_seq + 1:
            # Sequence numbers have no holes: the listener skipped events (its first snapshot
            # can miss one written just before it started). Passing them would lose them for
            # good, so read what is stored in between first.
            stored = await asyncio.to_thread(self._stored_after, self.last_seq)
            by_seq = {e.seq: e for e in stored if e.seq > self.last_seq}
            by_seq.update((e.seq, e) for e in fresh)
            fresh = [by_seq[seq] for seq in sorted(by_seq)]
        out: list[JobEvent] = []
        for event in fresh:
            if event.seq > self.last_seq:
                out.append(event)
                self.last_seq = event.seq
        return out
