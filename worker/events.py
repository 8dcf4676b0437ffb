"""Codex records → job events, batched so a chatty job costs few Firestore writes while a
client still sees an event after a quiet spell within tens of milliseconds, and one in a burst
within a write interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from shared.errors import CodexCloudError, PermanentError
from shared.jobstore import EventCursor, JobStore
from shared.models import EventDraft, MessageType
from worker.codex.events import bounded_record, map_event

log = logging.getLogger(__name__)

# Consecutive failed writes before a batch is given up (the job result still lands).
MAX_WRITE_FAILURES = 20
# Queue sentinels: write what is pending and stop / stop and hand what is pending back.
_CLOSE = None
_DETACH = object()


class EventBatcher:
    """Collects events and appends them in order. A batch gathers for `flush_s` after its first
    event, and no sooner than `min_interval_s` after the previous write began (each write
    rewrites the job's event head, one document, and Firestore sustains only a few writes per
    second on one document), or until it holds `max_batch` events. So an event after a quiet
    spell goes out within `flush_s`, and a burst costs one write per interval. A write failure
    is logged and the events are kept for the next write, so a blip in Firestore does not lose
    the stream."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        *,
        flush_s: float,
        max_batch: int,
        min_interval_s: float = 0.0,
        cursor: EventCursor | None = None,
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._flush_s = flush_s
        self._min_interval_s = min_interval_s
        self._max_batch = max_batch
        self._queue: asyncio.Queue[EventDraft | object | None] = asyncio.Queue()
        self.cursor = cursor or EventCursor()
        self.raw: list[dict[str, Any]] = []
        self.written = 0
        self.writes = 0
        self.dropped = 0
        self._task = asyncio.create_task(self._loop(), name=f"events-{job_id}")

    async def add_codex_record(self, record: dict[str, Any]) -> None:
        self.raw.append(record)
        message = map_event(record)
        await self._queue.put(
            EventDraft(
                message_type=MessageType(message.message_type),
                data=message.data,
                codex=bounded_record(message.codex or record),
            )
        )

    async def add(self, draft: EventDraft) -> None:
        await self._queue.put(draft)

    @property
    def closed(self) -> bool:
        return self._task.done()

    async def close(self) -> None:
        """Write everything queued, then stop."""
        await self._queue.put(_CLOSE)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def detach(self) -> list[EventDraft]:
        """Stop after the write in flight (if any) and return the events not yet written, in
        order, so the caller can put them into its own final write: the last batch of a job
        then costs no write of its own. The cursor stays valid for that write."""
        await self._queue.put(_DETACH)
        try:
            return await self._task
        except asyncio.CancelledError:
            return []

    async def _loop(self) -> list[EventDraft]:
        pending: list[EventDraft] = []
        closing = False
        failures = 0
        loop = asyncio.get_running_loop()
        last_write = -float("inf")

        def take(item: EventDraft | object | None) -> bool:
            """Queue `item`; False for a sentinel (stop collecting)."""
            if isinstance(item, EventDraft):
                pending.append(item)
                return True
            return False

        while not closing or pending:
            if not closing and not pending:
                item = await self._queue.get()
                if item is _DETACH:
                    return pending
                closing = not take(item)
            deadline = max(loop.time() + self._flush_s, last_write + self._min_interval_s)
            while not closing and len(pending) < self._max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                if item is _DETACH:
                    return pending
                closing = not take(item)
            if pending:
                batch = pending[: self._max_batch]
                last_write = loop.time()
                try:
                    await asyncio.to_thread(
                        self._store.append_events, self._job_id, batch, cursor=self.cursor
                    )
                except PermanentError as exc:
                    # Refused, not an outage: the same batch would fail every time. Later
                    # events still go out; the events.jsonl artifact keeps these.
                    log.error("dropping %d events the store refused: %s", len(batch), exc.detail)
                    self.dropped += len(batch)
                    del pending[: len(batch)]
                    continue
                except CodexCloudError as exc:
                    failures += 1
                    if failures >= MAX_WRITE_FAILURES:
                        log.error(
                            "dropping %d events after repeated failures: %s",
                            len(pending),
                            exc.detail,
                        )
                        self.dropped += len(pending)
                        pending.clear()
                        continue
                    log.warning("event write failed, will retry: %s", exc.detail)
                    await asyncio.sleep(min(2.0, 0.1 * failures))
                    continue
                failures = 0
                del pending[: len(batch)]
                self.written += len(batch)
                self.writes += 1
        return pending
