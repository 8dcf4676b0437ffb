"""Group commit: concurrent submissions share one Firestore commit when commits queue up.

Each submission is a unit of writes that must land atomically (a job and its first event).
Under load most of a commit's cost, in the client and in the database, is per request rather
than per write, so a unit that arrives while `max_in_flight` commits are already under way
waits for a free slot and then goes out together with every other unit that queued meanwhile,
as one atomic batch. A unit that finds a free slot is sent at once (with any that arrived in
the same turn of the event loop): below that concurrency nothing waits for anyone.

One unit's failure fails its whole batch (a batch is atomic, and nothing was written). Unless
the error is one every unit would share (`shared_failure`, e.g. the database unavailable), each
unit of a failed batch is then committed on its own, so it gets its own outcome (a conflicting
create is that unit's 409 or replay, not its neighbours').
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

W = TypeVar("W")

# Firestore's limit is 500 writes and 10 MiB per commit; staying well below both keeps one
# batch's latency close to a single commit's.
DEFAULT_MAX_WRITES = 200
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


@dataclass
class _Unit(Generic[W]):
    writes: Sequence[W]
    size: int
    done: asyncio.Future[None] = field(repr=False)


class GroupCommitter(Generic[W]):
    def __init__(
        self,
        commit: Callable[[list[W]], Awaitable[None]],
        *,
        size: Callable[[W], int],
        shared_failure: Callable[[BaseException], bool],
        max_in_flight: int,
        max_writes: int = DEFAULT_MAX_WRITES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._commit = commit
        self._size = size
        self._shared_failure = shared_failure
        self._max_in_flight = max_in_flight
        self._max_writes = max_writes
        self._max_bytes = max_bytes
        self._queue: collections.deque[_Unit[W]] = collections.deque()
        self._running = 0
        # Strong references: the event loop keeps only weak ones to its tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # commits sent, for tests and metrics
        self.units = 0

    async def commit(self, writes: Sequence[W]) -> None:
        """Commit `writes` atomically, possibly in one batch with other callers' units.

        Raises what the commit raised for this unit. A caller cancelled while waiting does not
        cancel the commit (its unit may share it with others): the writes may still land.
        """
        if not writes:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A waiter cancelled meanwhile never reads its outcome: read it here so an error
        # nobody awaits is not reported as "never retrieved".
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        unit = _Unit(writes, sum(self._size(w) for w in writes), done)
        self._queue.append(unit)
        if self._running < self._max_in_flight:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(unit.done)

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._send(self._take())
        finally:
            self._running -= 1

    def _take(self) -> list[_Unit[W]]:
        group = [self._queue.popleft()]
        writes, size = len(group[0].writes), group[0].size
        while self._queue:
            nxt = self._queue[0]
            if writes + len(nxt.writes) > self._max_writes or size + nxt.size > self._max_bytes:
                break
            group.append(self._queue.popleft())
            writes += len(nxt.writes)
            size += nxt.size
        return group

    async def _send(self, group: list[_Unit[W]]) -> None:
        self.batches += 1
        self.units += len(group)
        try:
            await self._commit([w for unit in group for w in unit.writes])
        except Exception as exc:
            if len(group) == 1 or self._shared_failure(exc):
                for unit in group:
                    _settle(unit, exc)
                return
            # Which unit failed the batch is unknown: each one alone gets its own answer.
            await asyncio.gather(*(self._send([unit]) for unit in group))
            return
        except BaseException as exc:  # cancelled (shutdown): the waiters must not hang
            for unit in group:
                _settle(unit, exc)
            raise
        for unit in group:
            _settle(unit, None)


def _settle(unit: _Unit[W], exc: BaseException | None) -> None:
    if unit.done.done():
        return
    if exc is None:
        unit.done.set_result(None)
    elif isinstance(exc, asyncio.CancelledError):
        unit.done.cancel()
    else:
        unit.done.set_exception(exc)
