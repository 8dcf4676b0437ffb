"""Full pipeline with the real worker, the codex binary and the scripted model: Pub/Sub →
codex-results; upload → outputs + result summary; long job through Workflows; a worker killed
mid-job → the job is requeued and finished on the other worker.

Own stack (module scope), because one test kills a worker process.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import httpx
import pytest
from google.api_core import exceptions as gexc

from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.models import Channel, JobRecord, JobRequest, JobStatus
from shared.settings import Settings


@pytest.fixture(scope="module")
def pipeline_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("pipeline-stack"),
        workers=2,
        worker_slots=2,
        api=False,
        sweep_interval_s=1.0,
        # A killed worker must leave the rotation quickly (its registry heartbeat stops).
        extra_env={"CODEX_CLOUD_WORKER_STALE_SECONDS": "4"},
    )
    with Stack(options) as running:
        yield running


@pytest.fixture
def adapters(pipeline_stack: Stack) -> Adapters:
    pipeline_stack.reset_state()
    os.environ.update(pipeline_stack.env)
    httpx.post(pipeline_stack.urls["model"] + "/_admin/reset", timeout=5)
    return Adapters(Settings())


def wait_job(adapters: Adapters, tenant: str, timeout_s: float = 20) -> JobRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = adapters.jobs.list_jobs(tenant, limit=5).jobs
        if jobs:
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError("no job was created")


def wait_terminal(adapters: Adapters, job_id: str, timeout_s: float = 90) -> JobRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = adapters.jobs.require_job(job_id)
        if job.status.terminal:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {adapters.jobs.require_job(job_id).status}")


def pull_results(adapters: Adapters, job_id: str, timeout_s: float = 30) -> list[Any]:
    sub = pubsub_v1.SubscriberClient()
    path = sub.subscription_path(adapters.settings.project_id, "codex-results-default")
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not found:
            try:
                resp = sub.pull(request={"subscription": path, "max_messages": 20}, timeout=2)
            except gexc.DeadlineExceeded:
                continue
            if resp.received_messages:
                sub.acknowledge(
                    request={
                        "subscription": path,
                        "ack_ids": [m.ack_id for m in resp.received_messages],
                    }
                )
            found += [
                m.message
                for m in resp.received_messages
                if m.message.attributes.get("job_id") == job_id
            ]
    finally:
        sub.close()
    return found


def test_publish_to_result_on_codex_results(adapters: Adapters) -> None:
    body = {"prompt": "[[script:hello]] write hello.py", "priority": "high"}
    adapters.publisher.publish_json("jobs", body, {"tenant": "default", "idempotency_key": "p-1"})
    job = wait_job(adapters, "default")
    done = wait_terminal(adapters, job.job_id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    (message,) = pull_results(adapters, job.job_id)
    payload = json.loads(message.data)
    assert payload["status"] == "succeeded"
    assert payload["channel"] == "pubsub"
    assert payload["result"]["final_message"]


def test_upload_to_outputs_and_result_summary(adapters: Adapters) -> None:
    uploads = adapters.storage.bucket_name("uploads")
    spec = b"prompt: '[[script:hello]] write hello.py'\n"
    adapters.storage.put(uploads, "tenants/acme/run/job.yaml", spec)
    job = wait_job(adapters, "acme")
    done = wait_terminal(adapters, job.job_id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    results = adapters.storage.bucket_name("results")
    name = "uploads/tenants/acme/run/job.yaml.result.json"
    deadline = time.monotonic() + 15
    while adapters.storage.stat(results, name) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    summary = json.loads(adapters.storage.get(results, name))
    assert summary["job_id"] == job.job_id
    assert summary["status"] == "succeeded"
    outputs = adapters.storage.list(adapters.storage.bucket_name("outputs"), f"{job.job_id}/")
    assert outputs, "the worker wrote no artifacts"


def test_long_job_runs_under_workflows(pipeline_stack: Stack, adapters: Adapters) -> None:
    assert "workflows" in pipeline_stack.processes, "the stack started no workflows-emulator"
    request = JobRequest(prompt="[[script:hello]] long one", long_running=True)
    job = adapters.jobs.create_job(request, tenant="t1", channel=Channel.HTTP).job
    done = wait_terminal(adapters, job.job_id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.route == "workflows"


def test_a_burst_of_new_jobs_is_spread_over_every_worker(
    pipeline_stack: Stack, adapters: Adapters
) -> None:
    """Jobs that continue no session go through the pool's balancer: a burst the size of the
    pool runs at once, one share per worker, instead of waiting on a full worker while
    another idles."""
    slots = pipeline_stack.options.worker_slots
    workers = pipeline_stack.options.workers
    registry = adapters.firestore.collection(adapters.settings.workers_collection)
    deadline = time.monotonic() + 10
    while len(list(registry.stream())) < workers:  # as in steady state: all registered
        assert time.monotonic() < deadline, "the workers did not register"
        time.sleep(0.1)
    for i in range(slots * workers):
        body = {"prompt": "[[script:hello]] write hello.py"}
        adapters.publisher.publish_json("jobs", body, {"idempotency_key": f"burst-{i}"})
    deadline = time.monotonic() + 20
    while len(jobs := adapters.jobs.list_jobs("default", limit=50).jobs) < slots * workers:
        assert time.monotonic() < deadline, "the burst's jobs were not all created"
        time.sleep(0.1)
    ran_on = []
    for job in jobs:
        done = wait_terminal(adapters, job.job_id)
        assert done.status is JobStatus.SUCCEEDED, done.error
        events = adapters.jobs.list_events(job.job_id)
        ran_on += [e.data["worker"] for e in events if e.data.get("worker")]
    assert len(ran_on) == len(jobs)  # each ran once
    # One share per worker: none waited on a full worker while another had free slots.
    assert Counter(ran_on) == {f"worker-{i}": slots for i in range(workers)}


def test_worker_killed_mid_job_is_requeued_and_finished_elsewhere(
    pipeline_stack: Stack, adapters: Adapters
) -> None:
    session = f"sess-{uuid.uuid4().hex[:8]}"
    request = JobRequest(prompt="[[script:slow]] sleep", session_id=session, max_attempts=2)
    job = adapters.jobs.create_job(request, tenant="t1", channel=Channel.HTTP).job
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = adapters.jobs.require_job(job.job_id)
        if current.status is JobStatus.RUNNING and current.lease_owner:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the job never started")
    victim = current.lease_owner
    assert victim is not None
    pipeline_stack.processes[victim].kill()
    done = wait_terminal(adapters, job.job_id, timeout_s=100)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempt == 2
    events = adapters.jobs.list_events(job.job_id)
    assert any(e.data.get("reason") == "lease expired" for e in events)
    workers = [e.data.get("worker") for e in events if e.data.get("worker")]
    assert workers[0] == victim
    assert workers[-1] != victim
