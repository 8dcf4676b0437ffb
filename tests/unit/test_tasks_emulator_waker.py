"""The local Cloud Tasks emulator's additions: new tasks and due times end its scan sleeps, and
a task name is taken for a while, as in Cloud Tasks."""

from __future__ import annotations

import threading
import time

from devstack.tasks_emulator import TaskNames, Waker


def test_a_due_time_ends_the_sleep_then_and_not_before() -> None:
    waker = Waker()
    waker.notify_in(0.1)
    started = time.monotonic()
    waker.sleep(10)
    elapsed = time.monotonic() - started
    assert 0.09 <= elapsed < 5  # woken by the due time, not by the 10 s scan


def test_a_due_time_scheduled_while_sleeping_shortens_the_sleep() -> None:
    waker = Waker()
    timer = threading.Timer(0.05, waker.notify_in, args=(0.05,))
    timer.start()
    started = time.monotonic()
    waker.sleep(10)
    timer.join()
    assert time.monotonic() - started < 5


def test_a_new_task_wakes_every_sleeper_once() -> None:
    waker = Waker()
    woke: list[float] = []

    def sleeper() -> None:
        waker.sleep(10)
        woke.append(time.monotonic())

    threads = [threading.Thread(target=sleeper) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    waker.notify()
    for thread in threads:
        thread.join(timeout=5)
    assert len(woke) == 3
    # This thread has now seen that notification: its next sleep runs to its timeout.
    waker.sleep(0)
    started = time.monotonic()
    waker.sleep(0.05)
    assert time.monotonic() - started >= 0.04


def test_a_task_name_is_refused_while_the_window_lasts_then_free_again() -> None:
    names = TaskNames(window_s=0.2)
    assert names.claim("q/tasks/job-3")
    assert not names.claim("q/tasks/job-3")
    assert names.claim("q/tasks/job-4")  # another dispatch of the same job
    time.sleep(0.25)
    assert names.claim("q/tasks/job-3")
