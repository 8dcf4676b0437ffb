"""API helpers for listing, downloads and streams, and the WebSocket session's error handling
(no network: fakes stand in for the job store and the socket)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from api.auth import Principal
from api.routes.jobs import _last_event_id, content_disposition
from api.routes.stream import _Session
from api.service import check_list_cursor
from api.streaming import StreamType
from api.watch import stored_events
from shared.errors import DependencyUnavailable, InvalidInput, NotFound
from shared.jobstore import JobStore
from shared.models import JobEvent, MessageType
from shared.tokens import StreamClaims


def _cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


@pytest.mark.parametrize("job_id", ["__main__", ".", "..", "a/b", ""])
def test_cursors_naming_no_possible_job_are_bad_cursors(job_id: str) -> None:
    # Regression: `__main__` reached Firestore, whose InvalidArgument was answered as a 503.
    with pytest.raises(NotFound, match="invalid cursor"):
        check_list_cursor(_cursor(job_id))


def test_cursors_of_real_job_ids_pass_and_garbage_is_a_bad_cursor() -> None:
    assert _cursor("__main__") == "X19tYWluX18"
    check_list_cursor(_cursor("job_0123abcd"))
    with pytest.raises(NotFound, match="invalid cursor"):
        check_list_cursor("//8")  # not UTF-8 inside


def test_content_disposition_names_any_file() -> None:
    header = content_disposition("报告.txt")
    header.encode("latin-1")  # regression: the bare UTF-8 name could not be sent (500)
    assert header == "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt"
    assert content_disposition("hello.py") == (
        "attachment; filename=\"hello.py\"; filename*=UTF-8''hello.py"
    )
    odd = content_disposition('a"b\\c\r\nd e.txt')
    assert 'filename="a_b_c__d e.txt"' in odd
    assert "filename*=UTF-8''a%22b%5Cc%0D%0Ad%20e.txt" in odd


def test_last_event_id_header_wins_over_the_query() -> None:
    # A reconnecting EventSource repeats the URL's query but sends its newer position as header.
    assert _last_event_id("7", 2) == 7
    assert _last_event_id(None, 2) == 2
    assert _last_event_id("  ", 2) == 2
    assert _last_event_id(None, None) == -1
    with pytest.raises(InvalidInput):
        _last_event_id("abc", 2)


class _EventStore:
    def __init__(self, count: int) -> None:
        now = datetime.now(UTC)
        self.events = [
            JobEvent(seq=i, job_id="j", message_type=MessageType.PROGRESS, timestamp=now)
            for i in range(count)
        ]
        self.calls: list[tuple[int, int]] = []

    def list_events(self, job_id: str, *, after_seq: int = -1, limit: int = 1000) -> list[JobEvent]:
        self.calls.append((after_seq, limit))
        return [e for e in self.events if e.seq > after_seq][:limit]


async def _collect(store: _EventStore, after_seq: int = -1, page: int = 1000) -> list[int]:
    events = stored_events(cast(JobStore, store), "j", after_seq, page=page)
    return [e.seq async for e in events]


@pytest.mark.parametrize("count", [0, 999, 1000, 2500])
def test_stored_events_are_read_page_by_page(count: int) -> None:
    store = _EventStore(count)
    assert asyncio.run(_collect(store)) == list(range(count))
    assert all(limit == 1000 for _, limit in store.calls)
    assert len(store.calls) == count // 1000 + 1
    assert asyncio.run(_collect(_EventStore(10), after_seq=4, page=3)) == [5, 6, 7, 8, 9]


# ---- the WebSocket session ------------------------------------------------------------------


class _Socket:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.sent_more = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.sent_more.set()


class _FailingGauge:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    def try_admit(self, tenant: str, limit: int) -> bool:
        raise self.errors.pop(0)


def _session(socket: _Socket, gauge: _FailingGauge | None = None) -> _Session:
    settings = SimpleNamespace(stream_heartbeat_s=60.0, max_active_jobs_per_tenant=5)
    # The stream's key is still in force and within its limit: these tests are about what a
    # turn does next.
    principal = Principal("k1", "acme", "STANDARD", frozenset({"write"}), 100)

    async def throttle(_principal: Principal) -> None:
        return None

    auth = SimpleNamespace(
        stream_principal=lambda claims: principal,
        authorize=lambda principal, scope: None,
        throttle=throttle,
    )
    services = SimpleNamespace(
        settings=settings, writer=None, jobs=None, active_jobs=gauge, auth=auth
    )
    claims = StreamClaims("s1", "acme", "k1", ("write",), 0)
    return _Session(cast(Any, socket), cast(Any, services), claims, "s1")


async def _until(socket: _Socket, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        while len(socket.sent) < count:
            await socket.sent_more.wait()
            socket.sent_more.clear()
    return socket.sent


def test_a_turn_that_fails_answers_an_error_and_the_session_goes_on() -> None:
    async def scenario() -> list[dict[str, Any]]:
        socket = _Socket()
        gauge = _FailingGauge(
            RuntimeError("boom in internal-bucket-name"),
            DependencyUnavailable("job store unavailable: ServiceUnavailable"),
        )
        session = _session(socket, gauge)
        turns = asyncio.create_task(session.turn_loop(StreamType.FULL))
        await session.inbox.put({"prompt": "first"})
        await session.inbox.put({"prompt": "second"})
        try:
            return await _until(socket, 2)
        finally:
            turns.cancel()

    first, second = asyncio.run(scenario())
    # Regression: the exception ended the turn loop silently; nothing was sent.
    assert first["message_type"] == "error"
    assert first["data"] == {
        "code": "internal",
        "message": "The server failed to handle the request.",
    }
    assert second["data"]["code"] == "dependency-unavailable"
    assert "ServiceUnavailable" not in json.dumps(second)


def test_binary_frames_get_an_error_and_the_session_stays_open() -> None:
    async def scenario() -> list[dict[str, Any]]:
        socket = _Socket()
        session = _session(socket)
        reader = asyncio.create_task(session.read_loop())
        await socket.incoming.put({"type": "websocket.receive", "bytes": b"\x00\x01"})
        await socket.incoming.put({"type": "websocket.receive", "text": '{"type": "ping"}'})
        sent = await _until(socket, 2)
        await socket.incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 5)
        assert reader.exception() is not None  # a disconnect ends the loop (WebSocketDisconnect)
        return sent

    error, pong = asyncio.run(scenario())
    assert error["message_type"] == "error"
    assert error["data"]["code"] == "bad-frame"
    assert pong["type"] == "pong"
