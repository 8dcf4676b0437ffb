"""The worker service with the real codex binary, the scripted model and the emulators.

These tests drive the worker the way Cloud Tasks and Workflows do (POST :run / :run-sync on a
dispatched job). They use a stack without the functions, so no dispatcher races the test for
the jobs it creates.
"""

from __future__ import annotations

import io
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import free_port
from devstack.procs import ManagedProcess
from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.models import ArchiveWorkspace, Channel, JobRecord, JobRequest, JobStatus
from shared.settings import Settings
from tests.archives import tgz

SECRETS = {
    "OPENAI_API_KEY": "sk-runner-env-secret-1",
    "CODEX_CLOUD_OPENAI_API_KEY": "sk-model-key-secret-2",
    "CODEX_CLOUD_TOKEN_SIGNING_KEY": "signing-key-secret-3",
    "GOOGLE_APPLICATION_CREDENTIALS": "/var/secrets/gcp-key-secret-4.json",
}


@pytest.fixture(scope="module")
def worker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("worker-stack"),
        functions=(),
        api=False,
        workers=2,
        worker_slots=2,
        # Heartbeats far apart: a cancel that arrives within a second came through the
        # worker's mailbox listener, not a heartbeat.
        extra_env={
            "CODEX_CLOUD_HEARTBEAT_SECONDS": "60",
            "CODEX_CLOUD_LEASE_SECONDS": "180",
            "CODEX_CLOUD_WORKER_STALE_SECONDS": "300",
        },
    )
    with Stack(options) as running:
        yield running


@pytest.fixture
def adapters(worker_stack: Stack) -> Adapters:
    worker_stack.reset_state()
    os.environ.update(worker_stack.env)
    httpx.post(worker_stack.urls["model"] + "/_admin/reset", timeout=5)
    return Adapters(Settings())


def _dispatched(adapters: Adapters, prompt: str, **fields: Any) -> JobRecord:
    request = JobRequest(prompt=prompt, **fields)
    job = adapters.jobs.create_job(request, tenant="t1", channel=Channel.HTTP).job
    return adapters.jobs.transition(job.job_id, JobStatus.DISPATCHED)


def _run(stack: Stack, job_id: str, worker: int = 0, sync: bool = False) -> httpx.Response:
    route = "run-sync" if sync else "run"
    return httpx.post(f"{stack.urls[f'worker-{worker}']}/v1/jobs/{job_id}:{route}", timeout=120)


def _wait(adapters: Adapters, job_id: str, timeout_s: float = 60) -> JobRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = adapters.jobs.require_job(job_id)
        if job.status.terminal:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished: {adapters.jobs.require_job(job_id).status}")


def _wait_status(adapters: Adapters, job_id: str, status: JobStatus, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while adapters.jobs.require_job(job_id).status is not status:
        assert time.monotonic() < deadline, f"job never reached {status}"
        time.sleep(0.05)


def _model_requests(stack: Stack) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = httpx.get(
        stack.urls["model"] + "/_admin/requests", timeout=5
    ).json()["requests"]
    return requests


def _command_outputs(adapters: Adapters, job_id: str) -> list[dict[str, Any]]:
    items = []
    for event in adapters.jobs.list_events(job_id):
        item = (event.codex or {}).get("item") or {}
        if item.get("type") == "command_execution" and item.get("status") != "in_progress":
            items.append(item)
    return items


def test_success_changes_files_records_events_and_uploads_artifacts(
    worker_stack: Stack, adapters: Adapters
) -> None:
    job = _dispatched(adapters, "[[script:hello]] write hello.py and run it")
    resp = _run(worker_stack, job.job_id, sync=True)
    assert resp.status_code == 200
    done = adapters.jobs.require_job(job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result is not None
    assert done.result.exit_code == 0
    assert "hello from codex-cloud" in (done.result.final_message or "")
    assert done.result.changed_files == ["hello.py"]
    assert done.result.usage is not None
    assert done.result.usage.input_tokens > 0
    assert done.result.thread_id
    assert done.result.attempt == 1
    events = adapters.jobs.list_events(job.job_id)
    assert [e.seq for e in events] == list(range(len(events)))
    codex_types = [(e.codex or {}).get("type") for e in events if e.codex]
    assert codex_types[0] == "thread.started"
    assert codex_types[-1] == "turn.completed"
    assert events[-1].message_type.value == "complete"
    assert events[-1].data["status"] == "succeeded"
    outputs = adapters.settings.topology.bucket("outputs")
    names = {b.name for b in adapters.storage.list(outputs, prefix=f"{job.job_id}/")}
    assert names == {
        f"{job.job_id}/{n}"
        for n in ("events.jsonl", "final-message.txt", "diff.patch", "changes.tar.gz")
    }
    patch = adapters.storage.get(outputs, f"{job.job_id}/diff.patch").decode()
    assert "+++ b/hello.py" in patch
    assert '+print("hello from codex-cloud")' in patch
    archive = adapters.storage.get(outputs, f"{job.job_id}/changes.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames() == ["hello.py"]


def test_a_failing_agent_command_is_reported_but_the_job_succeeds(
    worker_stack: Stack, adapters: Adapters
) -> None:
    job = _dispatched(adapters, "[[script:failing-command]] list a missing dir")
    _run(worker_stack, job.job_id, sync=True)
    done = adapters.jobs.require_job(job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    commands = _command_outputs(adapters, job.job_id)
    assert commands
    assert commands[0]["exit_code"] != 0


def test_timeout_stops_codex_and_ends_timed_out(worker_stack: Stack, adapters: Adapters) -> None:
    job = _dispatched(adapters, "[[script:slow]] sleep", timeout_ms=2_000)
    started = time.monotonic()
    assert _run(worker_stack, job.job_id).status_code == 202
    done = _wait(adapters, job.job_id, timeout_s=20)
    assert done.status is JobStatus.TIMED_OUT
    assert done.error is not None
    assert done.error.code == "timeout"
    assert time.monotonic() - started < 10


def test_cancel_through_the_job_record_stops_a_running_job_within_a_second(
    worker_stack: Stack, adapters: Adapters
) -> None:
    job = _dispatched(adapters, "[[script:slow]] sleep")
    _run(worker_stack, job.job_id)
    _wait_status(adapters, job.job_id, JobStatus.RUNNING)
    time.sleep(0.5)  # let codex start its command
    requested = time.monotonic()
    adapters.jobs.request_cancel(job.job_id)
    done = _wait(adapters, job.job_id, timeout_s=10)
    assert done.status is JobStatus.CANCELLED
    assert time.monotonic() - requested < 1.0
    # The signal went through the worker's mailbox, which it leaves empty.
    mailbox = adapters.jobs.cancel_signals("worker-0")
    deadline = time.monotonic() + 5
    while list(mailbox.stream()):
        assert time.monotonic() < deadline, "the cancel signal was never taken"
        time.sleep(0.05)


def test_model_server_error_fails_the_job_with_the_reason(
    worker_stack: Stack, adapters: Adapters
) -> None:
    job = _dispatched(adapters, "[[script:model-500]] anything")
    _run(worker_stack, job.job_id, sync=True)
    done = adapters.jobs.require_job(job.job_id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert done.error.code == "codex-failed"
    assert done.error.message  # codex's own wording of the model failure
    # Provider retries are bounded: a handful of requests, not codex's default of dozens.
    assert 1 <= len(_model_requests(worker_stack)) <= 4


def test_codex_crash_mid_run_fails_the_job_with_stderr(
    worker_stack: Stack, adapters: Adapters
) -> None:
    job = _dispatched(adapters, "[[script:slow]] sleep")
    _run(worker_stack, job.job_id)
    _wait_status(adapters, job.job_id, JobStatus.RUNNING)
    pid = _find_codex_pid(job.job_id)
    os.kill(pid, signal.SIGKILL)
    done = _wait(adapters, job.job_id, timeout_s=15)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert done.error.message


def _find_codex_pid(job_id: str, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                cmdline
                and cmdline[0].endswith(b"/codex")
                and any(job_id.encode() in part for part in cmdline)
            ):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("codex process not found")


def test_unsafe_archive_fails_the_job_with_a_clear_reason(
    worker_stack: Stack, adapters: Adapters
) -> None:
    uploads = adapters.settings.topology.bucket("uploads")
    adapters.storage.put(uploads, "tenants/t1/evil.tar.gz", tgz({"../../escape.txt": b"owned"}))
    job = _dispatched(
        adapters, "[[script:hello]] x", workspace=ArchiveWorkspace(object="tenants/t1/evil.tar.gz")
    )
    _run(worker_stack, job.job_id, sync=True)
    done = adapters.jobs.require_job(job.job_id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert done.error.code == "workspace-error"
    assert ".." in done.error.message
    assert not _model_requests(worker_stack)  # codex never ran


def test_archive_workspace_is_unpacked_for_the_agent(
    worker_stack: Stack, adapters: Adapters
) -> None:
    uploads = adapters.settings.topology.bucket("uploads")
    hello = b"print('from the archive')\n"
    adapters.storage.put(uploads, "tenants/t1/ws.tar.gz", tgz({"hello.py": hello}))
    job = _dispatched(
        adapters,
        "[[script:show-files]] look around",
        workspace=ArchiveWorkspace(object="tenants/t1/ws.tar.gz"),
    )
    _run(worker_stack, job.job_id, sync=True)
    done = adapters.jobs.require_job(job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result is not None
    assert "print('from the archive')" in (done.result.final_message or "")
    assert done.result.changed_files == []  # the unpacked input is the baseline, not a change


def test_a_job_cannot_use_another_tenants_upload_as_its_workspace(
    worker_stack: Stack, adapters: Adapters
) -> None:
    uploads = adapters.settings.topology.bucket("uploads")
    adapters.storage.put(uploads, "tenants/t2/private.tar.gz", tgz({"secret.txt": b"t2 only"}))
    job = _dispatched(
        adapters,
        "[[script:hello]] x",
        workspace=ArchiveWorkspace(object="tenants/t2/private.tar.gz"),
    )
    _run(worker_stack, job.job_id, sync=True)
    done = adapters.jobs.require_job(job.job_id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert "not an upload of this tenant" in done.error.message
    assert not _model_requests(worker_stack)


def test_a_follow_up_turn_resumes_the_session_on_another_worker(
    worker_stack: Stack, adapters: Adapters
) -> None:
    first = _dispatched(adapters, "[[script:followup]] create a note", session_id="sess-resume")
    _run(worker_stack, first.job_id, worker=0, sync=True)
    turn1 = adapters.jobs.require_job(first.job_id)
    assert turn1.status is JobStatus.SUCCEEDED
    second = _dispatched(adapters, "now append to it", session_id="sess-resume")
    _run(worker_stack, second.job_id, worker=1, sync=True)
    turn2 = adapters.jobs.require_job(second.job_id)
    assert turn2.status is JobStatus.SUCCEEDED
    assert turn1.result is not None
    assert turn2.result is not None
    assert turn2.result.thread_id == turn1.result.thread_id
    # The second turn saw the first turn's file: the workspace travelled with the session.
    assert "first turn\nsecond turn" in (turn2.result.final_message or "")
    workers = {e.data.get("worker") for e in adapters.jobs.list_events(second.job_id)}
    assert "worker-1" in workers


def test_a_follow_up_whose_saved_session_expired_fails_with_a_clear_reason(
    worker_stack: Stack, adapters: Adapters
) -> None:
    first = _dispatched(adapters, "[[script:followup]] create a note", session_id="sess-expired")
    _run(worker_stack, first.job_id, sync=True)
    assert adapters.jobs.require_job(first.job_id).status is JobStatus.SUCCEEDED
    # What the sessions bucket's lifecycle rule does to a session idle for 30 days.
    bucket = adapters.storage.client.bucket(adapters.settings.topology.bucket("sessions"))
    for blob in bucket.list_blobs(prefix="sess-expired/"):
        blob.delete()
    second = _dispatched(adapters, "now append to it", session_id="sess-expired")
    _run(worker_stack, second.job_id, sync=True)
    turn2 = _wait(adapters, second.job_id, timeout_s=30)
    assert turn2.status is JobStatus.FAILED
    assert turn2.error is not None
    assert "no longer exists" in turn2.error.message


def test_duplicate_delivery_runs_codex_once(worker_stack: Stack, adapters: Adapters) -> None:
    job = _dispatched(adapters, "[[script:hello]] once")
    first = _run(worker_stack, job.job_id, worker=0)
    again_same = _run(worker_stack, job.job_id, worker=0)
    again_other = _run(worker_stack, job.job_id, worker=1)
    assert first.status_code == 202
    assert again_same.status_code == 200
    assert again_same.json()["status"] == "ignored"
    assert again_other.status_code == 200
    assert again_other.json()["status"] == "ignored"
    done = _wait(adapters, job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.attempt == 1
    late = _run(worker_stack, job.job_id, worker=1)  # redelivery after it finished
    assert late.json()["status"] == "ignored"
    starts = [
        e
        for e in adapters.jobs.list_events(job.job_id)
        if (e.codex or {}).get("type") == "thread.started"
    ]
    assert len(starts) == 1


def test_full_slots_answer_429_with_retry_after(worker_stack: Stack, adapters: Adapters) -> None:
    jobs = [_dispatched(adapters, f"[[script:slow]] sleep {i}") for i in range(3)]
    assert _run(worker_stack, jobs[0].job_id).status_code == 202
    assert _run(worker_stack, jobs[1].job_id).status_code == 202
    full = _run(worker_stack, jobs[2].job_id)
    assert full.status_code == 429
    assert int(full.headers["Retry-After"]) >= 1
    assert full.headers["content-type"].startswith("application/problem+json")
    assert adapters.jobs.require_job(jobs[2].job_id).status is JobStatus.DISPATCHED
    for job in jobs[:2]:
        adapters.jobs.request_cancel(job.job_id)
        assert _wait(adapters, job.job_id).status is JobStatus.CANCELLED


def _extra_worker(stack: Stack, name: str, env: dict[str, str]) -> tuple[ManagedProcess, str]:
    import sys

    port = free_port()
    proc = ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "worker", "--host", "127.0.0.1", "--port", str(port)],
        log_path=stack.state_dir / "logs" / f"{name}.log",
        env={**stack.env, "CODEX_CLOUD_WORKER_ID": name, **env},
    )
    proc.start()
    proc.wait_port("127.0.0.1", port, timeout_s=30)
    return proc, f"http://127.0.0.1:{port}"


def test_agent_commands_never_see_secrets(worker_stack: Stack, adapters: Adapters) -> None:
    proc, url = _extra_worker(worker_stack, "worker-secrets", SECRETS)
    try:
        job = _dispatched(adapters, "[[script:env]] print the environment")
        httpx.post(f"{url}/v1/jobs/{job.job_id}:run-sync", timeout=60)
        done = adapters.jobs.require_job(job.job_id)
        assert done.status is JobStatus.SUCCEEDED
        (command,) = _command_outputs(adapters, job.job_id)
        output = command["aggregated_output"]
        assert "PATH=" in output  # the command really ran and printed its environment
        for name, value in SECRETS.items():
            assert value not in output, name
        for leaked in (
            "FIRESTORE_EMULATOR_HOST",
            "PUBSUB_EMULATOR_HOST",
            "CODEX_CLOUD_",
            "GOOGLE_",
            "OPENAI_API_KEY",
        ):
            assert leaked not in output
        events_text = str([e.model_dump() for e in adapters.jobs.list_events(job.job_id)])
        assert SECRETS["CODEX_CLOUD_OPENAI_API_KEY"] not in events_text
        # codex itself did authenticate to the model with the key
        auth = {r["headers"].get("authorization") for r in _model_requests(worker_stack)}
        assert f"Bearer {SECRETS['CODEX_CLOUD_OPENAI_API_KEY']}" in auth
    finally:
        proc.stop()


def test_model_server_down_fails_within_a_bounded_time(
    worker_stack: Stack, adapters: Adapters
) -> None:
    closed = free_port()
    proc, url = _extra_worker(
        worker_stack,
        "worker-no-model",
        {"CODEX_CLOUD_MODEL_BASE_URL": f"http://127.0.0.1:{closed}/v1"},
    )
    try:
        job = _dispatched(adapters, "[[script:hello]] unreachable model")
        started = time.monotonic()
        httpx.post(f"{url}/v1/jobs/{job.job_id}:run-sync", timeout=90)
        done = adapters.jobs.require_job(job.job_id)
        assert done.status is JobStatus.FAILED
        assert time.monotonic() - started < 30
    finally:
        proc.stop()


def test_sigterm_lets_short_jobs_finish_and_requeues_the_rest(
    worker_stack: Stack, adapters: Adapters
) -> None:
    proc, url = _extra_worker(
        worker_stack, "worker-drain", {"CODEX_CLOUD_DRAIN_GRACE_SECONDS": "3"}
    )
    try:
        quick = _dispatched(adapters, "[[script:hello]] quick")
        slow = _dispatched(adapters, "[[script:slow]] long")
        assert httpx.post(f"{url}/v1/jobs/{slow.job_id}:run", timeout=10).status_code == 202
        assert httpx.post(f"{url}/v1/jobs/{quick.job_id}:run", timeout=10).status_code == 202
        _wait_status(adapters, slow.job_id, JobStatus.RUNNING)
        assert proc.popen is not None
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(timeout=30)
        assert adapters.jobs.require_job(quick.job_id).status is JobStatus.SUCCEEDED
        requeued = adapters.jobs.require_job(slow.job_id)
        assert requeued.status is JobStatus.QUEUED
        assert requeued.lease_owner is None
        assert any(
            "shutting down" in (e.data.get("reason") or "")
            for e in adapters.jobs.list_events(slow.job_id)
        )
    finally:
        proc.stop()
