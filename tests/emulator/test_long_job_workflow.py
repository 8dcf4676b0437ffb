"""workflows/long_job.yaml executed by workflows-emulator against fake worker and control
servers run by the test (success, deadline → timed_out, worker loss → retry)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import free_port
from tests.httpfakes import Reply, Request, fake_server

REPO = Path(__file__).resolve().parents[2]
EMULATOR = REPO / ".venv-wf" / "bin" / "workflows-emulator"
WORKFLOW = REPO / "workflows" / "long_job.yaml"


@pytest.fixture(scope="module")
def workflows_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Part of the project's set-up (make setup): missing means a broken install, not a skip.
    assert EMULATOR.exists(), "workflows-emulator missing from .venv-wf: run make setup"
    port = free_port()
    log = (tmp_path_factory.mktemp("wf") / "wf.log").open("w")
    proc = subprocess.Popen(
        [str(EMULATOR), "--source", str(WORKFLOW), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path_factory.mktemp("wfcwd"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/docs", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def execute(workflows_url: str, argument: dict[str, Any]) -> Any:
    import json

    url = f"{workflows_url}/v1/projects/p/locations/us-central1/workflows/codex-long-job/executions"
    # The emulator binds top-level keys to main's params (see shared/adapters/workflows.py).
    resp = httpx.post(url, json={"argument": json.dumps({"args": argument})}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def argument(job_id: str, workers: list[str], control: str, deadline_in_s: float) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "dispatch_seq": 3,
        "attempt": 0,
        "workers": workers,
        "control_url": control,
        "deadline_ts": time.time() + deadline_in_s,
        "max_attempts": 3,
        "poll_initial_s": 0.1,
        "poll_max_s": 0.4,
        "loss_threshold": 2,
        "use_oidc": False,
    }


class ScriptedWorker:
    """Accepts :run, then reports `running` for `polls_until_done` GETs, then succeeded."""

    def __init__(self, polls_until_done: int | None, run_status: int = 202) -> None:
        self.polls_until_done = polls_until_done
        self.run_status = run_status
        self.gets = 0

    def __call__(self, req: Request) -> Reply:
        if req.method == "POST" and req.path.endswith(":run"):
            return self.run_status, {"status": "accepted"}
        if req.method == "POST" and req.path.endswith(":cancel"):
            return 202, {"stopping_here": True}
        if req.method == "GET":
            self.gets += 1
            done = self.polls_until_done is not None and self.gets > self.polls_until_done
            job: dict[str, Any] = {
                "job_id": "j1",
                "status": "succeeded" if done else "running",
                "attempt": 1,
            }
            if done:
                job["result"] = {"final_message": "hello"}
            return 200, job
        return 404, {}


def control_ok(req: Request) -> Reply:
    return 200, {"status": "timed_out" if req.path.endswith(":expire") else "queued"}


def test_success_path_returns_the_terminal_job(workflows_url: str) -> None:
    with fake_server(ScriptedWorker(polls_until_done=2)) as worker, fake_server(control_ok) as ctl:
        out = execute(workflows_url, argument("j1", [worker.url], ctl.url, 60))
    assert out["status"] == "succeeded"
    assert out["result"] == {"final_message": "hello"}
    run = [r for r in worker.requests if r.path.endswith(":run")]
    assert len(run) == 1
    assert run[0].json() == {"job_id": "j1", "dispatch_seq": 3}
    assert ctl.requests == []


def test_deadline_cancels_on_the_worker_and_marks_timed_out(workflows_url: str) -> None:
    with (
        fake_server(ScriptedWorker(polls_until_done=None)) as worker,
        fake_server(control_ok) as ctl,
    ):
        out = execute(workflows_url, argument("j1", [worker.url], ctl.url, 1.5))
    assert out["status"] == "timed_out"
    (cancel,) = [r for r in worker.requests if r.path == "/v1/jobs/j1:cancel"]
    (expire,) = ctl.requests
    assert expire.path == "/internal/jobs/j1:expire"
    # Marked timed out before the worker is asked to stop: a cancel of a job not yet running
    # would end it `cancelled` first.
    assert expire.received_at < cancel.received_at


def test_a_worker_audience_leaves_every_call_in_place(workflows_url: str) -> None:
    # Production passes the worker's OIDC audience (decision 0021); the emulator cannot mint
    # tokens (use_oidc stays off), but worker_call's audience choice runs for worker and control
    # calls alike.
    with (
        fake_server(ScriptedWorker(polls_until_done=None)) as worker,
        fake_server(control_ok) as ctl,
    ):
        arg = argument("j1", [worker.url], ctl.url, 1.5)
        out = execute(workflows_url, {**arg, "worker_audience": "https://worker.example.com"})
    assert out["status"] == "timed_out"
    assert any(r.path == "/v1/jobs/j1:run" for r in worker.requests)
    assert any(r.path == "/v1/jobs/j1" for r in worker.requests)
    assert any(r.path == "/v1/jobs/j1:cancel" for r in worker.requests)
    assert [r.path for r in ctl.requests] == ["/internal/jobs/j1:expire"]


def test_unavailable_worker_is_retried_on_the_next_worker(workflows_url: str) -> None:
    lost = ScriptedWorker(polls_until_done=0, run_status=503)
    with (
        fake_server(lost) as dead,
        fake_server(ScriptedWorker(polls_until_done=1)) as alive,
        fake_server(control_ok) as ctl,
    ):
        out = execute(workflows_url, argument("j1", [dead.url, alive.url], ctl.url, 60))
    assert out["status"] == "succeeded"
    assert [r.path for r in dead.requests] == ["/v1/jobs/j1:run"]
    assert any(r.path == "/v1/jobs/j1:run" for r in alive.requests)


def test_worker_lost_mid_run_is_reported_so_the_job_is_retried(workflows_url: str) -> None:
    def dies_after_run(req: Request) -> Reply:
        if req.path.endswith(":run"):
            return 202, {"status": "accepted"}
        return 503, {"error": "no healthy upstream"}  # what the load balancer says

    with fake_server(dies_after_run) as worker, fake_server(control_ok) as ctl:
        out = execute(workflows_url, argument("j1", [worker.url], ctl.url, 60))
    assert out["status"] == "requeued"
    (report,) = ctl.requests
    assert report.path == "/internal/jobs/j1:worker-lost"
    assert report.json() == {"attempt": 1, "worker": worker.url}


def test_no_worker_accepts_gives_up_after_max_attempts(workflows_url: str) -> None:
    busy = ScriptedWorker(polls_until_done=None, run_status=429)
    with fake_server(busy) as worker, fake_server(control_ok) as ctl:
        out = execute(workflows_url, argument("j1", [worker.url], ctl.url, 60))
    assert out == {"job_id": "j1", "status": "dispatch_failed", "tries": 3}
    assert len(worker.requests) == 3
