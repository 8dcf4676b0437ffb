"""`python -m api --workers N`: N server processes serve one port and stop with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.ports import free_port, wait_for_port
from tests.e2e.api_support import API_ENV, ApiEnv, api, api_stack

__all__ = ["api", "api_stack"]

REPO = Path(__file__).resolve().parents[2]


def _server_processes(pid: int) -> set[int]:
    """Children of `pid` started by multiprocessing's spawn (not its resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.add(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_two_worker_processes_serve_submissions_and_stop_with_the_server(api: ApiEnv) -> None:
    port = free_port()
    env = {**os.environ, **api.stack.env, **API_ENV, "CODEX_CLOUD_LOG_LEVEL": "WARNING"}
    argv = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*argv, "--workers", "2"], cwd=REPO, env=env, stdout=subprocess.DEVNULL
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=60)
        key, tenant = api.key(tier="PREMIUM")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-KEY": key}) as c:
            # Keep-alive off: each request may land on either process.
            job_ids = []
            for i in range(4):
                r = c.post("/v2/exec", json={"prompt": f"p{i}"}, headers={"Connection": "close"})
                assert r.status_code == 202, r.text
                job_ids.append(r.json()["job_id"])
        workers = _server_processes(server.pid)
        assert len(workers) == 2
        assert {api.store.require_job(j, tenant=tenant).tenant for j in job_ids} == {tenant}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
