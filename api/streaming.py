"""The streaming protocol shared by SSE and WebSocket, and the registry of open WebSockets."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.models import JobEvent, MessageType

log = logging.getLogger(__name__)


class StreamType(StrEnum):
    """Which message types a WebSocket client wants (server keepalives are always sent)."""

    INTERACTIVE = "interactive"  # output, error, complete
    PROGRESS = "progress"  # progress, error, complete
    FULL = "full"  # everything, including worker heartbeats


_WANTED: dict[StreamType, frozenset[MessageType]] = {
    StreamType.INTERACTIVE: frozenset(
        {MessageType.OUTPUT, MessageType.ERROR, MessageType.COMPLETE}
    ),
    StreamType.PROGRESS: frozenset({MessageType.PROGRESS, MessageType.ERROR, MessageType.COMPLETE}),
    StreamType.FULL: frozenset(MessageType),
}


def wanted(stream_type: StreamType, message_type: MessageType) -> bool:
    return message_type in _WANTED[stream_type]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def event_message(session_id: str, event: JobEvent) -> dict[str, Any]:
    """One job event as a streaming message (the SSE `data:` and the WebSocket frame)."""
    return {
        "session_id": session_id,
        "job_id": event.job_id,
        "seq": event.seq,
        "message_type": event.message_type.value,
        "data": event.data,
        "codex": event.codex,
        "timestamp": event.timestamp.isoformat(),
    }


def server_message(
    session_id: str, message_type: MessageType, data: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "message_type": message_type.value,
        "data": data,
        "timestamp": now_iso(),
        **extra,
    }


def sse_frame(
    payload: dict[str, Any], *, event_id: int | None = None, event: str | None = None
) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(payload, default=str, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


Sender = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Connection:
    connection_id: str
    session_id: str
    tenant: str
    key_id: str
    send: Sender
    connected_at: str = field(default_factory=now_iso)
    stream_type: StreamType = StreamType.FULL
    jobs_started: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "session_id": self.session_id,
            "tenant": self.tenant,
            "key_id": self.key_id,
            "connected_at": self.connected_at,
            "stream_type": self.stream_type.value,
            "jobs_started": self.jobs_started,
        }


class ConnectionRegistry:
    """WebSockets open on this instance (used only from the event loop)."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def add(self, *, session_id: str, tenant: str, key_id: str, send: Sender) -> Connection:
        conn = Connection(uuid.uuid4().hex, session_id, tenant, key_id, send)
        self._connections[conn.connection_id] = conn
        return conn

    def remove(self, conn: Connection) -> None:
        self._connections.pop(conn.connection_id, None)

    def all(self) -> list[Connection]:
        return list(self._connections.values())

    def matching(
        self, target: str, value: str | None, tenant: str | None = None
    ) -> list[Connection]:
        """Connections a broadcast reaches; `tenant`, when given, narrows any target (a
        session id is the client's choice, so two tenants may both have one)."""
        conns = [c for c in self.all() if tenant is None or c.tenant == tenant]
        if target == "session":
            return [c for c in conns if c.session_id == value]
        if target == "tenant":
            return [c for c in conns if c.tenant == value]
        return conns

    async def broadcast(
        self, target: str, value: str | None, message: dict[str, Any], tenant: str | None = None
    ) -> int:
        targets = self.matching(target, value, tenant)

        async def deliver(conn: Connection) -> bool:
            try:
                await conn.send({**message, "session_id": conn.session_id})
                return True
            except Exception:  # a closing socket must not stop the broadcast
                log.debug("broadcast delivery failed", exc_info=True)
                return False

        results = await asyncio.gather(*(deliver(c) for c in targets))
        return sum(results)
