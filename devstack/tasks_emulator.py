"""Run gcloud-tasks-emulator the way the local stack needs it (this file runs under
.venv-tasks's Python, which has the emulator and nothing of ours).

The emulator scans each queue every 100 ms and, when a dispatch fails, retries it on the next
scan, without backoff. That costs each task ~50 ms of pickup delay on average, and a worker
answering 429 gets hammered ten times a second per waiting task. Here the scan interval is
short, and a failed dispatch is rescheduled with exponential backoff, as Cloud Tasks does with
a queue's retry config (min/max backoff). Everything else is the emulator's own behaviour.

    python devstack/tasks_emulator.py [--scan-ms 10] [--min-backoff-ms 100]
        [--max-backoff-ms 2000] start --port P ...
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any


def _option(argv: list[str], name: str, default: float) -> float:
    if name in argv:
        index = argv.index(name)
        value = float(argv[index + 1])
        del argv[index : index + 2]
        return value
    return default


def main() -> None:
    argv = sys.argv[1:]
    scan_s = _option(argv, "--scan-ms", 10) / 1000
    min_backoff_s = _option(argv, "--min-backoff-ms", 100) / 1000
    max_backoff_s = _option(argv, "--max-backoff-ms", 2000) / 1000

    from gcloud_tasks_emulator import __main__ as cli
    from gcloud_tasks_emulator import server

    if not hasattr(server, "_LOOP_SLEEP_TIME") or not hasattr(server.QueueState, "submit_task"):
        raise SystemExit("unsupported gcloud-tasks-emulator version: scan/backoff not applied")
    server._LOOP_SLEEP_TIME = scan_s  # the emulator has no option for it
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
        return task

    server.QueueState.submit_task = submit_with_backoff
    sys.argv = [sys.argv[0], *argv]
    cli.main()


if __name__ == "__main__":
    main()
