"""More than one API instance: `python -m api --workers N`, and admin calls that reach the
WebSockets of every instance (Redis carries them; the API test stack's own API is one more)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

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


@contextlib.contextmanager
def _api_instance(api: ApiEnv, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Another API server on its own port, on the API test stack's emulators and Redis."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **api.stack.env,
        **API_ENV,
        "CODEX_CLOUD_LOG_LEVEL": "WARNING",
        "CODEX_CLOUD_API_BASE_URL": url,
    }
    argv = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port), *extra]
    server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=60)
        yield server, url
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_two_worker_processes_serve_submissions_and_stop_with_the_server(api: ApiEnv) -> None:
    key, tenant = api.key(tier="PREMIUM")
    with _api_instance(api, "--workers", "2") as (server, url):
        with httpx.Client(base_url=url, headers={"X-API-KEY": key}) as c:
            job_ids = []
            for i in range(4):
                # Keep-alive off: each request may land on either process.
                r = c.post("/v2/exec", json={"prompt": f"p{i}"}, headers={"Connection": "close"})
                assert r.status_code == 202, r.text
                job_ids.append(r.json()["job_id"])
        workers = _server_processes(server.pid)
        assert len(workers) == 2
        assert {api.store.require_job(j, tenant=tenant).tenant for j in job_ids} == {tenant}
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def _recv_broadcast(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("broadcast") is True:
            return message


def _stream_url(client: httpx.Client, base: str, session_id: str) -> str:
    r = client.post("/v2/exec", json={"prompt": "p", "mode": "stream", "session_id": session_id})
    assert r.status_code == 200, r.text
    token = r.json()["connection_token"]
    return base.replace("http://", "ws://") + f"/v2/stream/{session_id}?token={token}"


def test_admin_calls_reach_the_websockets_of_every_instance(api: ApiEnv) -> None:
    key, tenant = api.key()
    admin, _ = api.key(scopes=("admin",))
    with _api_instance(api) as (_, url_a), _api_instance(api) as (_, url_b):
        with httpx.Client(base_url=url_a, headers={"X-API-KEY": key}) as c:
            ws_a_url = _stream_url(c, url_a, "fan-a")
            ws_b_url = _stream_url(c, url_b, "fan-b")  # a token is valid on every instance
        with (
            connect(ws_a_url, open_timeout=5) as ws_a,
            connect(ws_b_url, open_timeout=5) as ws_b,
            httpx.Client(base_url=url_a, headers={"X-API-KEY": admin}) as a,
            httpx.Client(base_url=url_b, headers={"X-API-KEY": admin}) as b,
        ):
            ws_a.recv(timeout=10)
            ws_b.recv(timeout=10)
            listed = a.get("/v2/connections").json()
            mine = {c["session_id"]: c for c in listed["connections"] if c["tenant"] == tenant}
            assert set(mine) == {"fan-a", "fan-b"}
            assert mine["fan-a"]["instance_id"] != mine["fan-b"]["instance_id"]
            # The two instances here and the stack's own API.
            assert (listed["scope"], listed["instances"]) == ("all", 3)

            sent = b.post(
                "/v2/broadcast", json={"target": "tenant", "tenant": tenant, "data": {"n": 1}}
            ).json()
            assert sent == {"target": "tenant", "delivered": 2, "instances": 3, "scope": "all"}
            for ws in (ws_a, ws_b):
                assert _recv_broadcast(ws)["data"] == {"n": 1}
            one = a.post("/v2/broadcast", json={"target": "session", "session_id": "fan-b"})
            assert one.json()["delivered"] == 1
            assert _recv_broadcast(ws_b)["session_id"] == "fan-b"
