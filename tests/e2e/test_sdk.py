"""The Python SDK against the whole local stack: real API, workers and codex."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codex_cloud import AsyncClient, Client, Event
from codex_cloud.errors import AuthError, NotFoundError, ValidationFailed
from devstack.stack import Stack
from shared.adapters import Adapters
from shared.apikeys import create_key

HELLO = "[[script:hello]] write hello.py and run it"


@pytest.fixture
def key(adapters: Adapters) -> str:
    return create_key(adapters.firestore, adapters.settings, tenant="sdk", name="sdk-test").key


def test_run_follows_events_and_downloads_artifacts(stack: Stack, key: str, tmp_path: Path) -> None:
    seen: list[Event] = []
    with Client(stack.urls["api"], key) as client:
        job = client.run(HELLO, on_event=seen.append, priority="high")
        assert job.status == "succeeded", job.raw
        assert "hello from codex-cloud" in (job.final_message or "")
        kinds = {e.data.get("item_type") for e in seen}
        assert {"command_execution", "file_change", "agent_message"} <= kinds
        assert seen[-1].is_final
        assert [e.seq for e in seen if e.seq is not None] == sorted(
            {e.seq for e in seen if e.seq is not None}
        )
        names = {a.name for a in client.artifacts(job.job_id)}
        assert {"diff.patch", "final-message.txt", "events.jsonl"} <= names
        assert b"hello.py" in client.download_artifact(job.job_id, "diff.patch")
        saved = client.download_artifacts(job.job_id, tmp_path)
        assert (tmp_path / "final-message.txt") in saved
        listed = client.list_jobs(status="succeeded")
        assert job.job_id in {j.job_id for j in listed.jobs}


class _DropOnce(httpx.BaseTransport):
    """Cuts the first event stream after a few frames, like a flaky proxy."""

    def __init__(self, frames_before_drop: int) -> None:
        self._inner = httpx.HTTPTransport()
        self._frames = frames_before_drop
        self.last_event_ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if len(self.last_event_ids) > 1:
            return response
        inner = response.stream
        limit = self._frames

        class Dropping(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                ids = 0
                for chunk in inner:  # type: ignore[union-attr]
                    yield chunk
                    ids += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
                    if ids >= limit:
                        raise httpx.ReadError("connection reset by peer")

            def close(self) -> None:
                inner.close()  # type: ignore[union-attr]

        return httpx.Response(response.status_code, headers=response.headers, stream=Dropping())

    def close(self) -> None:
        self._inner.close()


def test_events_resume_after_a_dropped_connection(stack: Stack, key: str) -> None:
    transport = _DropOnce(frames_before_drop=3)
    with Client(stack.urls["api"], key, transport=transport) as client:
        submitted = client.submit(HELLO)
        events = list(client.events(submitted.job_id))
    seqs = [e.seq for e in events]
    assert seqs == list(range(len(seqs))), seqs  # every event once, in order, no gap
    assert events[-1].is_final
    assert events[-1].data["status"] == "succeeded"
    assert len(transport.last_event_ids) >= 2
    assert transport.last_event_ids[0] is None
    assert transport.last_event_ids[1] is not None
    assert int(transport.last_event_ids[1]) >= 0


def test_websocket_session_runs_a_follow_up_turn(stack: Stack, key: str) -> None:
    with Client(stack.urls["api"], key) as client:
        with client.stream("[[script:followup]] start a note") as session:
            first = list(session.events(timeout_s=90))
            assert first[-1].data["status"] == "succeeded"
            session.send("now append to it")
            second = list(session.events(timeout_s=90))
        assert second[-1].data["status"] == "succeeded"
        assert len(session.job_ids) == 2
        follow_up = client.get(session.job_ids[1])
        assert follow_up.session_id == session.session_id
        assert "first turn\nsecond turn" in (follow_up.final_message or "")


def test_async_client_runs_jobs_and_sessions(stack: Stack, key: str) -> None:
    async def scenario() -> tuple[str, str, list[str]]:
        async with AsyncClient(stack.urls["api"], key) as client:
            job = await client.run(HELLO)
            session = await client.stream("[[script:followup]] start", stream_type="interactive")
            async with session:
                turn = [e async for e in session.events(timeout_s=90)]
            types = sorted({e.message_type for e in turn})
            artifacts = [a.name for a in await client.artifacts(job.job_id)]
            assert "diff.patch" in artifacts
            return job.status, turn[-1].data["status"], types

    status, streamed, types = asyncio.run(scenario())
    assert status == "succeeded"
    assert streamed == "succeeded"
    assert "progress" not in types  # the interactive stream type leaves progress out


def test_errors_are_typed_with_problem_fields(stack: Stack, key: str) -> None:
    with Client(stack.urls["api"], key) as client:
        with pytest.raises(ValidationFailed) as invalid:
            client.submit("x", timeout_ms=5)
        assert invalid.value.status == 422
        assert invalid.value.type.endswith("validation-error")
        assert any("timeout_ms" in err["loc"] for err in invalid.value.errors)
        with pytest.raises(NotFoundError):
            client.get("no-such-job")
    with Client(stack.urls["api"], "cck_nope_nope") as client, pytest.raises(AuthError) as denied:
        client.list_jobs()
    assert denied.value.status == 401
