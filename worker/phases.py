"""Wall-clock time per step of a job run, logged with the outcome so a slow job shows where
its time went (workspace, codex, artifacts, final write) without a profiler."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    def __init__(self) -> None:
        self._started = time.perf_counter()
        self.ms: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.ms[name] = round(self.ms.get(name, 0.0) + elapsed_ms, 1)

    def total_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 1)
