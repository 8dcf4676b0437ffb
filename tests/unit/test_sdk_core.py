"""SDK pieces without a server: SSE decoding, problem+json errors, retries, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codex_cloud import AsyncClient, Client
from codex_cloud._core import RetryPolicy, api_error, retry_after, should_retry
from codex_cloud.aio import AsyncStreamSession
from codex_cloud.client import StreamSession
from codex_cloud.errors import AuthError, RateLimitedError, ValidationFailed
from codex_cloud.sse import SSEDecoder


def test_sse_decoder_follows_the_spec() -> None:
    lines = [
        "retry: 1500",
        "",
        ": keepalive comment",
        "id: 3",
        'data: {"a":',
        "data: 1}",
        "",
        "event: heartbeat",
        "data:{}",
        "",
        "id",
        "data: x",
        "",
    ]
    decoder = SSEDecoder()
    messages = list(decoder.feed_all(lines))
    assert [(m.id, m.event, m.data) for m in messages] == [
        ("3", "message", '{"a":\n1}'),
        (None, "heartbeat", "{}"),
        ("", "message", "x"),
    ]
    assert decoder.retry_ms == 1500
    assert decoder.last_event_id == ""


def test_problem_json_becomes_a_typed_error() -> None:
    body = {
        "type": "urn:codex-cloud:problem:validation-error",
        "title": "Invalid request",
        "status": 422,
        "detail": "The request does not match the schema.",
        "code": "validation-error",
        "errors": [{"loc": ["body", "prompt"], "msg": "Field required"}],
    }
    response = httpx.Response(
        422, content=json.dumps(body), headers={"content-type": "application/problem+json"}
    )
    error = api_error(response)
    assert isinstance(error, ValidationFailed)
    assert (error.status, error.code, error.title) == (422, "validation-error", "Invalid request")
    assert error.errors[0]["msg"] == "Field required"
    assert "prompt: Field required" in str(error)
    assert isinstance(api_error(httpx.Response(401, text="nope")), AuthError)


def test_retry_after_and_policy() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    policy = RetryPolicy(attempts=3, base_delay_s=1, max_delay_s=10)
    assert policy.delay(1, 30.0) == 10.0
    assert 0.5 <= policy.delay(1, None) <= 1.0
    assert should_retry("POST", 429, idempotent=False)
    assert not should_retry("POST", 502, idempotent=False)
    assert should_retry("GET", 502, idempotent=False)
    assert not should_retry("GET", 404, idempotent=True)


def test_429_is_retried_honouring_retry_after_then_gives_up() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(
                429,
                json={"title": "Too many requests", "status": 429, "detail": "slow down"},
                headers={"Retry-After": "2"},
            )
        return httpx.Response(200, json={"jobs": [], "next_cursor": None})

    client = Client("http://x", "cck_k", transport=httpx.MockTransport(handler), sleep=slept.append)
    assert client.list_jobs().jobs == []
    assert slept == [2.0, 2.0]
    calls.clear()
    slept.clear()
    client.retry = RetryPolicy(attempts=2)
    with pytest.raises(RateLimitedError) as info:
        # Every answer is 429 now: after the bounded attempts the typed error surfaces.
        Client(
            "http://x",
            "cck_k",
            retry=RetryPolicy(attempts=2),
            transport=httpx.MockTransport(
                lambda r: httpx.Response(429, json={"detail": "no"}, headers={"Retry-After": "1"})
            ),
            sleep=slept.append,
        ).get("j")
    assert info.value.retry_after_s == 1.0
    assert slept == [1.0]


def _sse(*frames: tuple[int, str, dict[str, object]]) -> bytes:
    return "".join(
        f"id: {seq}\ndata: {json.dumps({'seq': seq, 'message_type': kind, 'data': data})}\n\n"
        for seq, kind, data in frames
    ).encode()


def test_events_resume_after_a_drop_without_duplicates() -> None:
    seen_last_ids: list[str | None] = []

    class Dropping(httpx.ByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield _sse(
                (0, "progress", {"status": "queued"}), (1, "progress", {"status": "running"})
            )
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        seen_last_ids.append(request.headers.get("last-event-id"))
        if len(seen_last_ids) == 1:
            return httpx.Response(200, stream=Dropping(b""))
        # The server replays from after Last-Event-ID (and here, once more, event 1).
        return httpx.Response(
            200,
            content=_sse(
                (1, "progress", {"status": "running"}),
                (2, "output", {"text": "hi"}),
                (3, "complete", {"status": "succeeded"}),
            ),
        )

    client = Client("http://x", "k", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    events = list(client.events("j"))
    assert [e.seq for e in events] == [0, 1, 2, 3]
    assert seen_last_ids == [None, "1"]
    assert events[-1].is_final


def _jobs_api(request: httpx.Request) -> httpx.Response:
    """Two pages of jobs, two artifacts (one named to escape the destination), /health."""
    path = request.url.path
    if path == "/v2/jobs":
        if request.url.params.get("cursor") == "p2":
            return httpx.Response(200, json={"jobs": [{"job_id": "j3"}], "next_cursor": None})
        jobs = [{"job_id": "j1"}, {"job_id": "j2"}]
        return httpx.Response(200, json={"jobs": jobs, "next_cursor": "p2"})
    if path == "/v2/jobs/j1/artifacts":
        names = ["diff.patch", "logs/events.jsonl", "../outside.txt"]
        return httpx.Response(200, json={"artifacts": [{"name": n} for n in names]})
    if path.startswith("/v2/jobs/j1/artifacts/"):
        return httpx.Response(200, content=path.rsplit("/", 1)[1].encode())
    if path == "/health":
        return httpx.Response(200, json={"status": "ok"})
    return httpx.Response(404, json={"detail": path})


def test_async_client_pages_jobs_saves_artifacts_and_checks_health(tmp_path: Path) -> None:
    dest = tmp_path / "out"

    async def scenario() -> tuple[list[str], list[Path], dict[str, object]]:
        async with AsyncClient("http://x", "k", transport=httpx.MockTransport(_jobs_api)) as cc:
            ids = [job.job_id async for job in cc.iter_jobs()]
            saved = await cc.download_artifacts("j1", dest)
            return ids, saved, await cc.health()

    ids, saved, health = asyncio.run(scenario())
    assert ids == ["j1", "j2", "j3"]
    assert saved == [(dest / "diff.patch").resolve(), (dest / "logs/events.jsonl").resolve()]
    assert (dest / "logs/events.jsonl").read_bytes() == b"events.jsonl"
    assert not (tmp_path / "outside.txt").exists()
    assert health == {"status": "ok"}


def test_async_and_sync_clients_offer_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    # Only the closing call differs in name (aclose is the asyncio convention).
    assert public(Client) - {"close"} == public(AsyncClient) - {"aclose"}
    assert public(StreamSession) == public(AsyncStreamSession)
