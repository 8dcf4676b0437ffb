"""A local stack dedicated to the API's end-to-end tests, plus helpers to drive jobs.

The stack runs the emulators and the API only: no dispatcher and no workers, so a job stays
where a test puts it and the test moves it through its states with `JobStore`, exactly as the
worker would. Limits are small so boundaries can be reached quickly. One instance is shared by
every API test module (started on first use, stopped when the session ends).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.apikeys import create_key
from shared.jobstore import JobStore
from shared.models import EventDraft, JobRecord, JobResult, JobStatus, MessageType
from shared.settings import Settings

STANDARD_LIMIT = 20
PREMIUM_LIMIT = 40
MAX_ACTIVE_JOBS = 4
HEARTBEAT_S = 0.5
SYNC_MAX_WAIT_S = 6.0
WORKER_ID = "test-worker"

API_ENV = {
    "CODEX_CLOUD_RATE_LIMIT_STANDARD_PER_MINUTE": str(STANDARD_LIMIT),
    "CODEX_CLOUD_RATE_LIMIT_PREMIUM_PER_MINUTE": str(PREMIUM_LIMIT),
    "CODEX_CLOUD_MAX_ACTIVE_JOBS_PER_TENANT": str(MAX_ACTIVE_JOBS),
    "CODEX_CLOUD_STREAM_HEARTBEAT_S": str(HEARTBEAT_S),
    "CODEX_CLOUD_SYNC_WAIT_MARGIN_S": "0.5",
    "CODEX_CLOUD_SYNC_MAX_WAIT_S": str(SYNC_MAX_WAIT_S),
    "CODEX_CLOUD_API_KEY_CACHE_S": "0",
    "CODEX_CLOUD_TRUST_GATEWAY_USERINFO": "true",
}

_stack: Stack | None = None


def _api_stack(config: pytest.Config, base: Any) -> Stack:
    global _stack
    if _stack is None:
        options = StackOptions(
            state_dir=base,
            functions=(),
            workers=0,
            model_server=False,
            sweep_interval_s=0,
            extra_env=API_ENV,
        )
        _stack = Stack(options).start()
        config.add_cleanup(_stop)
    return _stack


def _stop() -> None:
    global _stack
    if _stack is not None:
        _stack.stop()
        _stack = None


@dataclass
class ApiEnv:
    stack: Stack
    settings: Settings
    adapters: Adapters
    url: str

    @property
    def store(self) -> JobStore:
        return self.adapters.jobs

    def key(
        self,
        tenant: str | None = None,
        *,
        tier: str = "STANDARD",
        scopes: tuple[str, ...] = ("read", "write"),
        rate_limit: int | None = None,
    ) -> tuple[str, str]:
        """A new key (and its tenant): a fresh tenant unless one is given."""
        tenant = tenant or f"t-{uuid.uuid4().hex[:10]}"
        created = create_key(
            self.adapters.firestore,
            self.settings,
            tenant=tenant,
            name="test",
            tier=tier,
            scopes=scopes,
            rate_limit_per_minute=rate_limit,
        )
        return created.key, tenant

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"X-API-KEY": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="session")
def api_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return _api_stack(request.config, tmp_path_factory.mktemp("apistack"))


def api_env(stack: Stack) -> ApiEnv:
    """A clean view of an API stack (state reset; its env applied to this process)."""
    # The autouse fixture in tests/conftest.py restores os.environ afterwards.
    stack.reset_state()
    os.environ.update(stack.env)
    settings = Settings()
    return ApiEnv(stack, settings, Adapters(settings), stack.urls["api"])


@pytest.fixture
def api(api_stack: Stack) -> ApiEnv:
    return api_env(api_stack)


# ---- moving a job the way the dispatcher and worker would ---------------------------------------


def wait_for_job(store: JobStore, tenant: str, timeout_s: float = 10.0) -> JobRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = store.list_jobs(tenant, limit=1)
        if page.jobs:
            return page.jobs[0]
        time.sleep(0.05)
    raise AssertionError(f"no job appeared for tenant {tenant}")


def start_job(store: JobStore, job_id: str) -> JobRecord:
    store.transition(job_id, JobStatus.DISPATCHED, expected=[JobStatus.QUEUED])
    return store.claim(job_id, worker_id=WORKER_ID, lease_s=30)


def emit(store: JobStore, job_id: str, *drafts: tuple[MessageType, dict[str, Any]]) -> None:
    store.append_events(job_id, [EventDraft(message_type=t, data=d) for t, d in drafts])


def finish_job(
    store: JobStore,
    job_id: str,
    *,
    status: JobStatus = JobStatus.SUCCEEDED,
    final_message: str = "done",
) -> JobRecord:
    job = store.require_job(job_id)
    result = JobResult(
        exit_code=0 if status is JobStatus.SUCCEEDED else 1,
        final_message=final_message,
        duration_ms=1234,
        attempt=job.attempt,
    )
    return store.finish(job_id, status, worker_id=WORKER_ID, attempt=job.attempt, result=result)


def run_job(store: JobStore, job_id: str, text: str = "hello from the agent") -> JobRecord:
    start_job(store, job_id)
    emit(
        store,
        job_id,
        (MessageType.PROGRESS, {"event": "turn.started"}),
        (
            MessageType.OUTPUT,
            {"event": "item.completed", "item_type": "agent_message", "text": text},
        ),
    )
    return finish_job(store, job_id, final_message=text)
