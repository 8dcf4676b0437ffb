"""A real job through the whole platform: API → Firestore → dispatcher → worker running codex
against the scripted model → events and result back through the API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from shared.adapters import Adapters
from shared.apikeys import create_key

PROMPT = "[[script:hello]] write hello.py"


@pytest.fixture
def client(stack: Stack, adapters: Adapters) -> httpx.Client:
    assert "api" in stack.urls, "the local stack started no API"
    key = create_key(
        adapters.firestore, adapters.settings, tenant="pipeline", name="full-pipeline"
    ).key
    return httpx.Client(base_url=stack.urls["api"], headers={"X-API-KEY": key}, timeout=200)


@pytest.mark.timeout(240)
def test_sync_submission_returns_the_finished_job(client: httpx.Client) -> None:
    with client:
        r = client.post("/v2/exec", json={"prompt": PROMPT, "mode": "sync", "timeout_ms": 120_000})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded", body
    assert body["exit_code"] == 0
    assert body["stdout"]
    assert body["execution_time_ms"] is not None


@pytest.mark.timeout(240)
def test_async_submission_streams_events_until_success(client: httpx.Client) -> None:
    with client:
        r = client.post("/v2/exec", json={"prompt": PROMPT, "timeout_ms": 120_000})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        messages: list[dict[str, Any]] = []
        with client.stream("GET", f"/v2/jobs/{job_id}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    message = json.loads(line.removeprefix("data: "))
                    if message["message_type"] != "heartbeat":
                        messages.append(message)
        job = client.get(f"/v2/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    statuses = [m["data"].get("status") for m in messages if m["data"].get("status")]
    assert statuses[0] == "queued"
    assert "running" in statuses
    assert statuses[-1] == "succeeded"
    assert any(m["message_type"] == "output" for m in messages)
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
