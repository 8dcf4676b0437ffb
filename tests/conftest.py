"""Shared fixtures.

Tiers: tests/unit (no network), tests/emulator (real emulators), tests/e2e (whole stack).
One session-wide local stack — the same `devstack.Stack` that `make dev` runs — is started
lazily by the first test that needs it; each test then gets clean state (Firestore cleared,
Redis flushed, bucket objects deleted, pull subscriptions drained) without restarting it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.settings import Settings

TIER_BY_DIR = {
    "unit": "unit",
    "emulator": "emulator",
    "e2e": "e2e",
    "codex": "codex",
    "infra": "infra",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for directory, marker in TIER_BY_DIR.items():
            if directory in parts:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def without_emulators(monkeypatch: pytest.MonkeyPatch) -> None:
    """No emulator hosts in the environment (a stack started by an earlier test sets them),
    as in a production process: settings outside local/test refuse them."""
    for var in (
        "FIRESTORE_EMULATOR_HOST",
        "PUBSUB_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "CODEX_CLOUD_TASKS_EMULATOR_HOST",
        "CODEX_CLOUD_WORKFLOWS_EMULATOR_URL",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("devstack"),
        probe=True,
        workers=2,
        worker_slots=2,
        sweep_interval_s=1.0,
    )
    with Stack(options) as running:
        yield running


@pytest.fixture
def stack_env(stack: Stack) -> dict[str, str]:
    """The stack's client environment applied to this process, on clean state."""
    stack.reset_state()
    os.environ.update(stack.env)
    return stack.env


@pytest.fixture
def settings(stack_env: dict[str, str]) -> Settings:
    return Settings()


@pytest.fixture
def adapters(settings: Settings) -> Adapters:
    return Adapters(settings)
