"""Server-Sent Events and the WebSocket session protocol, fed by Firestore listeners.

The tests move jobs through their states with JobStore (as the dispatcher and worker do) and
check what the streaming clients receive.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shared.apikeys import list_keys, revoke_key
from shared.models import JobStatus, MessageType
from shared.tokens import sign_stream_token
from tests.e2e.api_support import (
    HEARTBEAT_S,
    ApiEnv,
    api,
    api_stack,
    emit,
    finish_job,
    run_job,
    start_job,
    wait_for_job,
)

__all__ = ["api", "api_stack"]


def _read_sse(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None, max_s: float = 15
) -> list[dict[str, Any]]:
    """All frames until the server closes the stream: [{id?, event?, data}]."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + max_s
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in r.iter_lines():
            assert time.monotonic() < deadline, "stream did not end"
            if not line:
                if "data" in current:
                    frames.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            if field == "data":
                current["data"] = json.loads(value)
            elif field in ("id", "event"):
                current[field] = value
    return frames


def _events(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("event") != "heartbeat"]


def _submit(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post("/v2/exec", json={"prompt": "p", **body})
    assert r.status_code in (200, 202), r.text
    data: dict[str, Any] = r.json()
    return data


def test_sse_follows_a_job_until_its_final_event(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = _submit(c)
        reading = pool.submit(_read_sse, c, f"/v2/jobs/{job['job_id']}/events")
        time.sleep(0.3)
        start_job(api.store, job["job_id"])
        time.sleep(HEARTBEAT_S * 2.5)  # a quiet stretch: heartbeats keep the stream alive
        emit(api.store, job["job_id"], (MessageType.OUTPUT, {"text": "hi"}))
        # codex's own turn.completed is a `complete` message but not the end of the job.
        emit(api.store, job["job_id"], (MessageType.COMPLETE, {"event": "turn.completed"}))
        finish_job(api.store, job["job_id"])
        frames = reading.result(timeout=15)

    heartbeats = [f for f in frames if f.get("event") == "heartbeat"]
    assert heartbeats
    assert "id" not in heartbeats[0]
    assert heartbeats[0]["data"]["message_type"] == "heartbeat"
    events = _events(frames)
    assert [int(f["id"]) for f in events] == list(range(6))
    assert [f["data"]["seq"] for f in events] == list(range(6))
    kinds = [f["data"]["message_type"] for f in events]
    assert kinds == ["progress", "progress", "progress", "output", "complete", "complete"]
    assert [f["data"]["data"].get("status") for f in events[:3]] == [
        "queued",
        "dispatched",
        "running",
    ]
    last = events[-1]["data"]
    assert last["data"]["status"] == "succeeded"
    assert set(last) == {
        "session_id",
        "job_id",
        "seq",
        "message_type",
        "data",
        "codex",
        "timestamp",
    }
    assert last["session_id"] == job["session_id"]
    assert last["job_id"] == job["job_id"]


def test_sse_replays_after_last_event_id(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        job = _submit(c)
        run_job(api.store, job["job_id"])  # seq 0..5
        url = f"/v2/jobs/{job['job_id']}/events"
        by_header = _events(_read_sse(c, url, headers={"Last-Event-ID": "2"}))
        by_query = _events(_read_sse(c, url + "?last_event_id=4"))
        everything = _events(_read_sse(c, url))
        nothing = _events(_read_sse(c, url, headers={"Last-Event-ID": "5"}))
    assert [int(f["id"]) for f in by_header] == [3, 4, 5]
    assert [int(f["id"]) for f in by_query] == [5]
    assert len(everything) == 6
    assert nothing == []


def test_sse_last_event_id_header_wins_over_the_query(api: ApiEnv) -> None:
    # A reconnecting EventSource repeats its URL (query included) and sends the newer position
    # in the header. Regression: the query won, so every reconnect replayed old events.
    key, _ = api.key()
    with api.client(key) as c:
        job = _submit(c)
        run_job(api.store, job["job_id"])  # seq 0..5
        url = f"/v2/jobs/{job['job_id']}/events?last_event_id=1"
        frames = _events(_read_sse(c, url, headers={"Last-Event-ID": "3"}))
    assert [int(f["id"]) for f in frames] == [4, 5]


def test_sse_resumes_live_after_reconnect(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = _submit(c)
        start_job(api.store, job["job_id"])  # seq 0..2 stored
        reading = pool.submit(
            _read_sse, c, f"/v2/jobs/{job['job_id']}/events", {"Last-Event-ID": "1"}
        )
        time.sleep(0.3)
        finish_job(api.store, job["job_id"], status=JobStatus.FAILED)
        frames = _events(reading.result(timeout=15))
    assert [int(f["id"]) for f in frames] == [2, 3]
    assert frames[-1]["data"]["data"]["status"] == "failed"


def test_sse_disconnect_leaves_the_service_healthy(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        job = _submit(c)
        for _ in range(5):
            with c.stream("GET", f"/v2/jobs/{job['job_id']}/events") as r:
                next(r.iter_lines())
        assert c.get(f"/v2/jobs/{job['job_id']}").status_code == 200
        run_job(api.store, job["job_id"])
        assert len(_events(_read_sse(c, f"/v2/jobs/{job['job_id']}/events"))) == 6


# ---- WebSocket --------------------------------------------------------------------------------


def _ws_url(api: ApiEnv, session_id: str, token: str, **params: str) -> str:
    query = "&".join([f"token={token}", *(f"{k}={v}" for k, v in params.items())])
    return api.url.replace("http://", "ws://") + f"/v2/stream/{session_id}?{query}"


def _recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def _recv_until(ws: ClientConnection, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        message = _recv(ws, max(0.1, deadline - time.monotonic()))
        seen.append(message)
        if predicate(message):
            return seen


def _is_final(m: dict[str, Any]) -> bool:
    return m.get("message_type") == "complete" and m.get("data", {}).get("status") in (
        "succeeded",
        "failed",
        "cancelled",
        "timed_out",
    )


def test_websocket_rejects_bad_tokens(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        stream = _submit(c, mode="stream", session_id="sess-a")
    token = stream["connection_token"]
    secret = api.settings.token_signing_key.get_secret_value()
    expired = sign_stream_token(
        secret, session_id="sess-a", tenant="t", key_id="k", ttl_s=10, now=time.time() - 60
    )
    forged = sign_stream_token("another-secret", session_id="sess-a", tenant="t", key_id="k")
    for url in (
        _ws_url(api, "sess-b", token),  # a token for another session
        _ws_url(api, "sess-a", expired),
        _ws_url(api, "sess-a", forged),
        _ws_url(api, "sess-a", token[:-2]),
        api.url.replace("http://", "ws://") + "/v2/stream/sess-a",
    ):
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=5).close()
        assert info.value.response.status_code == 401
        assert json.loads(info.value.response.body or b"{}")["code"] == "unauthorized"


def test_a_revoked_key_can_neither_open_a_stream_nor_start_turns_on_an_open_one(
    api: ApiEnv,
) -> None:
    key, tenant = api.key()
    with api.client(key) as c:
        opened, other, spare = (_submit(c, mode="stream") for _ in range(3))
    (stored,) = list_keys(api.adapters.firestore, api.settings, tenant=tenant)
    with (
        connect(opened["websocket_url"], open_timeout=5) as ws,
        connect(other["websocket_url"], open_timeout=5) as ws_other,
    ):
        run_job(api.store, opened["job_id"])  # the session's turn loop follows it to its end
        _recv_until(ws, _is_final)
        revoke_key(api.adapters.firestore, api.settings, stored.key_id)
        ws.send(json.dumps({"prompt": "one more turn"}))
        error = _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]
        assert error["data"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            _recv(ws, timeout=5)
        # Nor can it cancel the job the other socket follows.
        ws_other.send(json.dumps({"type": "cancel"}))
        error = _recv_until(ws_other, lambda m: m.get("message_type") == "error")[-1]
        assert error["data"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            _recv(ws_other, timeout=5)
    assert api.store.require_job(other["job_id"]).cancel_requested is False
    # The spare token has not expired, but the key behind it is gone.
    with pytest.raises(InvalidStatus) as info:
        connect(spare["websocket_url"], open_timeout=5).close()
    assert info.value.response.status_code == 401
    # No job was made for the refused turn.
    jobs = api.store.list_jobs(tenant, limit=50).jobs
    assert {j.job_id for j in jobs} == {opened["job_id"], other["job_id"], spare["job_id"]}


def test_websocket_prompts_count_against_the_keys_rate_limit(api: ApiEnv) -> None:
    key, tenant = api.key(rate_limit=2)
    with api.client(key) as c:
        stream = _submit(c, mode="stream")  # the first of two requests this minute
    with connect(stream["websocket_url"], open_timeout=5) as ws:
        ws.send(json.dumps({"type": "cancel"}))  # end the opening turn: prompts run in order
        _recv_until(ws, _is_final)
        ws.send(json.dumps({"prompt": "the second request"}))
        _recv_until(ws, lambda m: m.get("data", {}).get("status") == "queued")
        ws.send(json.dumps({"type": "cancel"}))
        _recv_until(ws, _is_final)
        # Regression: prompts on an open socket were never counted, so one stream token
        # let a key submit without limit.
        ws.send(json.dumps({"prompt": "one too many"}))
        error = _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]
        assert error["data"]["code"] == "rate-limited"
        assert error["data"]["retry_after_s"] >= 1
        ws.send(json.dumps({"type": "ping"}))  # the session stays open
        assert _recv_until(ws, lambda m: m.get("type") == "pong")[-1]["type"] == "pong"
    assert len(api.store.list_jobs(tenant, limit=50).jobs) == 2


def test_a_gateway_stream_needs_the_write_scope_to_prompt(api: ApiEnv) -> None:
    tenant = "t-gateway"
    token = sign_stream_token(
        api.settings.token_signing_key.get_secret_value(),
        session_id="sess-gw",
        tenant=tenant,
        key_id="gw:reader@example.com",
        scopes=("read",),
    )
    with connect(_ws_url(api, "sess-gw", token), open_timeout=5) as ws:
        ws.send(json.dumps({"prompt": "write something"}))
        error = _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]
        assert error["data"]["code"] == "forbidden"
    assert api.store.list_jobs(tenant, limit=5).jobs == []


def test_websocket_session_streams_turns_and_answers_pings(api: ApiEnv) -> None:
    key, tenant = api.key()
    with api.client(key) as c:
        stream = _submit(c, mode="stream")
    session_id = stream["session_id"]
    first_job = stream["job_id"]
    with connect(stream["websocket_url"], open_timeout=5) as ws:
        # The job created by the POST is streamed right away (stream_type full by default).
        first = _recv(ws)
        assert first["message_type"] == "progress"
        assert first["job_id"] == first_job
        assert first["data"]["status"] == "queued"
        assert first["session_id"] == session_id
        ws.send(json.dumps({"type": "ping"}))
        pong = _recv_until(ws, lambda m: m.get("type") == "pong")[-1]
        assert pong["session_id"] == session_id
        run_job(api.store, first_job)
        seen = _recv_until(ws, _is_final)
        assert [m["message_type"] for m in seen if "seq" in m][-2:] == ["output", "complete"]

        # A follow-up turn: a new job in the same session, filtered to interactive messages.
        ws.send(json.dumps({"prompt": "now add tests", "stream_type": "interactive"}))
        second = wait_for_job(api.store, tenant)
        deadline = time.monotonic() + 10
        while second.job_id == first_job and time.monotonic() < deadline:
            second = wait_for_job(api.store, tenant)
        assert second.job_id != first_job
        assert second.session_id == session_id
        assert second.request.mode.value == "stream"
        assert second.request.prompt == "now add tests"
        run_job(api.store, second.job_id, text="tests added")
        seen = _recv_until(ws, _is_final)
        kinds = {m["message_type"] for m in seen if m.get("job_id") == second.job_id and "seq" in m}
        assert kinds == {"output", "complete"}
        assert any(m["data"].get("text") == "tests added" for m in seen)

        # Bad prompts are answered with an error message, and the connection stays usable.
        ws.send(json.dumps({"prompt": ""}))
        error = _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]
        assert error["data"]["code"] == "validation-error"
        ws.send("not json")
        assert (
            _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]["data"]["code"]
            == "bad-frame"
        )
        # Server keepalives arrive while nothing happens.
        beat = _recv_until(ws, lambda m: m.get("message_type") == "heartbeat", timeout=5)[-1]
        assert beat["session_id"] == session_id


def test_websocket_replays_every_event_of_a_finished_job(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        stream = _submit(c, mode="stream")
    job_id = stream["job_id"]
    start_job(api.store, job_id)  # seq 0..2
    for first in range(0, 1001, 250):  # more than one page of stored events
        drafts = [(MessageType.OUTPUT, {"n": n}) for n in range(first, min(first + 250, 1001))]
        emit(api.store, job_id, *drafts)
    finish_job(api.store, job_id)
    # Connecting after the end: the whole history is replayed from storage.
    with connect(stream["websocket_url"], open_timeout=5) as ws:
        seen = _recv_until(ws, _is_final, timeout=30)
    seqs = [m["seq"] for m in seen if "seq" in m]
    # Regression: the replay stopped after 1000 events, so `complete` never came.
    assert seqs == list(range(1005))
    assert [m["data"]["n"] for m in seen if m["message_type"] == "output"] == list(range(1001))


def test_websocket_bad_frames_and_bad_prompts_leave_the_session_open(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        stream = _submit(c, mode="stream")
    with connect(stream["websocket_url"] + "&stream_type=interactive", open_timeout=5) as ws:
        ws.send(b"\x00\x01binary")  # regression: closed the session
        error = _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]
        assert error["data"]["code"] == "bad-frame"
        ws.send(json.dumps({"type": "cancel"}))  # end the first turn: prompts run one by one
        _recv_until(ws, _is_final)
        for url in ("http://[::1", "https://[evil]/x"):  # regression: killed the turn loop
            ws.send(json.dumps({"prompt": "p", "webhook": {"url": url}}))
            error = _recv_until(ws, lambda m: m.get("message_type") == "error")[-1]
            assert error["data"]["code"] == "validation-error"
            assert ["webhook", "url"] in [e["loc"] for e in error["data"]["errors"]]
        ws.send(json.dumps({"type": "ping"}))
        assert _recv_until(ws, lambda m: m.get("type") == "pong")[-1]["type"] == "pong"


def test_websocket_cancel_stops_the_running_turn(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        stream = _submit(c, mode="stream")
    with connect(stream["websocket_url"] + "&stream_type=progress", open_timeout=5) as ws:
        _recv(ws)
        ws.send(json.dumps({"type": "cancel"}))
        final = _recv_until(ws, _is_final)[-1]
    assert final["data"]["status"] == "cancelled"


def test_admin_lists_connections_and_broadcasts(api: ApiEnv) -> None:
    key, tenant = api.key()
    admin, _ = api.key(scopes=("admin",))
    with api.client(key) as c, api.client(admin) as a:
        one = _submit(c, mode="stream", session_id="s-one")
        two = _submit(c, mode="stream", session_id="s-two")
        with (
            connect(one["websocket_url"], open_timeout=5) as ws1,
            connect(two["websocket_url"], open_timeout=5) as ws2,
        ):
            _recv(ws1)
            _recv(ws2)
            conns = a.get("/v2/connections").json()
            sessions = {x["session_id"] for x in conns["connections"]}
            assert {"s-one", "s-two"} <= sessions
            assert all(x["tenant"] == tenant for x in conns["connections"])

            r = a.post(
                "/v2/broadcast",
                json={"target": "session", "session_id": "s-two", "data": {"note": "hi two"}},
            )
            assert r.json() == {
                "target": "session",
                "delivered": 1,
                "instances": 1,
                "scope": "all",
            }
            got = _recv_until(ws2, lambda m: m.get("broadcast") is True)[-1]
            assert got["data"] == {"note": "hi two"}
            assert got["session_id"] == "s-two"

            r = a.post(
                "/v2/broadcast",
                json={
                    "target": "tenant",
                    "tenant": tenant,
                    "message_type": "output",
                    "data": {"x": 1},
                },
            )
            assert r.json()["delivered"] == 2
            for ws in (ws1, ws2):
                m = _recv_until(ws, lambda m: m.get("broadcast") is True)[-1]
                assert m["message_type"] == "output"
            assert a.post("/v2/broadcast", json={"target": "all"}).json()["delivered"] >= 2
            missing = a.post("/v2/broadcast", json={"target": "session"})
            assert missing.status_code == 422
            assert missing.json()["errors"][0]["loc"] == ["body", "session_id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = {x["session_id"] for x in a.get("/v2/connections").json()["connections"]}
            if not {"s-one", "s-two"} & left:
                break
            time.sleep(0.1)
        assert not {"s-one", "s-two"} & left
