"""Reliability scenarios: load, injected faults, bad input, API fuzzing.

Every scenario records one row (scenario, injected, expected, observed) through the `scenario`
fixture; the outcome comes from the test itself, and the table is printed at the end of the
run. The smoke subset (`reliability_smoke`) uses the session stack from tests/conftest.py; the
heavy scenarios (`reliability`) get their own stack with more worker slots and limits out of
the way, started on first use.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.settings import Settings


@dataclass
class Scenario:
    name: str
    injected: str = "-"
    expected: str = "-"
    observed: str = "-"
    outcome: str = "not run"

    def set(self, *, injected: str | None = None, expected: str | None = None) -> None:
        if injected is not None:
            self.injected = injected
        if expected is not None:
            self.expected = expected

    def observe(self, text: str) -> None:
        self.observed = text


_ROWS: list[Scenario] = []
_KEY = pytest.StashKey[Scenario]()


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Scenario:
    row = Scenario(name=request.node.name)
    request.node.stash[_KEY] = row
    _ROWS.append(row)
    return row


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    row = item.stash.get(_KEY, None)
    if row is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        row.outcome = "pass" if report.passed else ("skip" if report.skipped else "FAIL")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _ROWS:
        return
    headers = ("scenario", "injected", "expected", "observed", "result")
    rows = [(r.name, r.injected, r.expected, r.observed, r.outcome) for r in _ROWS]
    # The observed column gets the most room: it is what a failure is diagnosed from.
    caps = (50, 60, 60, 240, 6)
    widths = [
        min(cap, max(len(h), *(len(row[i]) for row in rows)))
        for i, (h, cap) in enumerate(zip(headers, caps, strict=True))
    ]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True))

    terminalreporter.section("reliability scenarios")
    terminalreporter.write_line(line(headers))
    terminalreporter.write_line("-+-".join("-" * w for w in widths))
    for row in rows:
        terminalreporter.write_line(line(row))


# ---- the heavy scenarios' own stack ------------------------------------------------------------

RELIABILITY_ENV = {
    "CODEX_CLOUD_MAX_ACTIVE_JOBS_PER_TENANT": "100000",
    "CODEX_CLOUD_RATE_LIMIT_STANDARD_PER_MINUTE": "1000000",
    "CODEX_CLOUD_RATE_LIMIT_PREMIUM_PER_MINUTE": "1000000",
    "CODEX_CLOUD_API_KEY_CACHE_S": "60",
    "CODEX_CLOUD_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="session")
def rel_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("relstack"),
        workers=2,
        worker_slots=4,
        sweep_interval_s=1.0,
        extra_env=RELIABILITY_ENV,
    )
    with Stack(options) as running:
        yield running


@pytest.fixture
def rel_adapters(rel_stack: Stack) -> Adapters:
    rel_stack.reset_state()
    os.environ.update(rel_stack.env)
    return Adapters(Settings())


REPO = Path(__file__).resolve().parents[2]
