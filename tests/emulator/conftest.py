"""Emulator-tier fixtures.

The job store tests write jobs directly; on the shared stack the dispatcher function would
react to those writes and move jobs on under the test's feet. They therefore use their own
Firestore project on the same emulator: no trigger is registered there.
"""

from __future__ import annotations

import httpx
import pytest

from devstack.stack import Stack
from shared.adapters import Adapters
from shared.settings import Settings

ISOLATED_PROJECT = "codex-cloud-isolated"


@pytest.fixture
def isolated_adapters(stack: Stack, stack_env: dict[str, str]) -> Adapters:
    host = stack_env["FIRESTORE_EMULATOR_HOST"]
    httpx.delete(
        f"http://{host}/emulator/v1/projects/{ISOLATED_PROJECT}/databases/(default)/documents",
        timeout=10,
    ).raise_for_status()
    return Adapters(Settings(project_id=ISOLATED_PROJECT))
