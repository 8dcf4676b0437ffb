"""Run gcloud-tasks-emulator the way the local stack needs it (this file runs under
.venv-tasks's Python, which has the emulator and nothing of ours).

The emulator's threads (one per queue, plus its processor, API and main loops) each sleep
100 ms between scans, and a failed dispatch is retried on the next scan, without backoff. That
costs each task ~50 ms of pickup delay on average, and a worker answering 429 gets hammered
ten times a second per waiting task. Here a created task wakes the queue threads at once, so
does the moment a scheduled task (a webhook retry, a dispatch backing off) comes due, and a
failed dispatch is rescheduled with exponential backoff, as Cloud Tasks does with a queue's
retry config (min/max backoff). A task name used in the last hour is refused with
ALREADY_EXISTS, as Cloud Tasks refuses it (the emulator would queue a second task), which is
what the dispatcher relies on to enqueue once per dispatch. The idle scan (`--idle-scan-ms`)
is only a safety net: scanning every 10 ms instead would cost a steady ~3 % of a core in
wake-ups, every 50 ms ~1 %.
Everything else is the emulator's own behaviour.

    python devstack/tasks_emulator.py [--idle-scan-ms 1000] [--min-backoff-ms 100]
        [--max-backoff-ms 2000] start --port P ...
"""

from __future__ import annotations

import heapq
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

NAME_REUSE_WINDOW_S = 3600.0


class Waker:
    """Sleeps that end early when something happened since the sleeper last woke (a thread
    busy dispatching when a task is created rescans right away instead of missing it), or
    when a scheduled moment (`notify_in`) arrives. Due times sit in one heap, not a timer
    thread each: a burst of backed-off dispatches would otherwise start a thread per task."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._due: list[float] = []  # heap of time.monotonic() values
        self._seen = threading.local()

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def notify_in(self, delay_s: float) -> None:
        """Wake the sleepers once `delay_s` has passed (when a scheduled task comes due)."""
        with self._cond:
            heapq.heappush(self._due, time.monotonic() + max(0.0, delay_s))
            self._cond.notify_all()  # sleepers shorten their wait to the new due time

    def sleep(self, timeout_s: float) -> None:
        with self._cond:
            seen = getattr(self._seen, "generation", self._generation)
            end = time.monotonic() + timeout_s
            while self._generation == seen:
                now = time.monotonic()
                if self._due and self._due[0] <= now:
                    while self._due and self._due[0] <= now:
                        heapq.heappop(self._due)
                    self._generation += 1
                    self._cond.notify_all()
                    break
                if now >= end:
                    break
                self._cond.wait((min(end, self._due[0]) if self._due else end) - now)
            self._seen.generation = self._generation


class TaskNames:
    """Task names created within the last `window_s` (Cloud Tasks keeps a name taken for
    about an hour after its task ran or was deleted)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, name: str) -> bool:
        """True if `name` is free (it is now taken); False if it was used within the window."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:  # forget expired names now and then, not per call
                self._seen = {n: t for n, t in self._seen.items() if now - t < self._window_s}
            used = self._seen.get(name)
            if used is not None and now - used < self._window_s:
                return False
            self._seen[name] = now
            return True


def _seconds_until(when: Any) -> float | None:
    """Seconds until a task's schedule time, None when it has none or it has passed."""
    stamp = getattr(when, "timestamp", None)
    if stamp is None:
        return None
    delay = float(stamp()) - time.time()
    return delay if delay > 0 else None


def _option(argv: list[str], name: str, default: float) -> float:
    if name in argv:
        index = argv.index(name)
        value = float(argv[index + 1])
        del argv[index : index + 2]
        return value
    return default


def main() -> None:
    argv = sys.argv[1:]
    idle_scan_s = _option(argv, "--idle-scan-ms", 1000) / 1000
    min_backoff_s = _option(argv, "--min-backoff-ms", 100) / 1000
    max_backoff_s = _option(argv, "--max-backoff-ms", 2000) / 1000

    from gcloud_tasks_emulator import __main__ as cli
    from gcloud_tasks_emulator import server
    from google.api_core.exceptions import AlreadyExists

    needed = (
        hasattr(server, "_LOOP_SLEEP_TIME")
        and hasattr(server, "time")
        and hasattr(server.QueueState, "submit_task")
        and hasattr(server.QueueState, "create_task")
    )
    if not needed:
        raise SystemExit("unsupported gcloud-tasks-emulator version: scan/backoff not applied")
    server._LOOP_SLEEP_TIME = idle_scan_s  # the emulator has no option for it
    # Its loops call `time.sleep(_LOOP_SLEEP_TIME)`: give the module a `time` whose sleep a
    # new task interrupts (the module uses nothing else from `time`).
    waker = Waker()
    server.time = SimpleNamespace(sleep=waker.sleep, monotonic=time.monotonic, time=time.time)
    create = server.QueueState.create_task

    def create_and_wake(self: Any, queue: str, task: Any) -> Any:
        created = create(self, queue, task)
        waker.notify()
        delay = _seconds_until(getattr(created, "schedule_time", None))
        if delay is not None:
            waker.notify_in(delay)
        return created

    names = TaskNames(NAME_REUSE_WINDOW_S)

    def create_once(self: Any, queue: str, task: Any) -> Any:
        if task.name and not names.claim(task.name):
            raise AlreadyExists(  # type: ignore[no-untyped-call]
                f"Task {task.name} already exists or was recently executed."
            )
        return create_and_wake(self, queue, task)

    server.QueueState.create_task = create_once
    dispatch = server.QueueState.submit_task

    def submit_with_backoff(self: Any, task_name: str, force_run: bool = False) -> Any:
        name = task_name.split("?", 1)[0]
        pending = self._queue_tasks.get(name.rsplit("/", 2)[0], [])
        before = next((t.dispatch_count for t in pending if t.name == name), None)
        task = dispatch(self, task_name, force_run)
        dispatched = before is not None and task.dispatch_count > before
        requeued = any(t is task for t in pending)
        if dispatched and requeued:  # the emulator put it back after a failed dispatch
            delay = min(max_backoff_s, min_backoff_s * 2 ** max(0, task.dispatch_count - 1))
            task.schedule_time = datetime.now(UTC) + timedelta(seconds=delay)
            waker.notify_in(delay)
        return task

    server.QueueState.submit_task = submit_with_backoff
    sys.argv = [sys.argv[0], *argv]
    cli.main()


if __name__ == "__main__":
    main()
