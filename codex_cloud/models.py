"""What the API returns, as small typed records (the raw JSON is kept in `raw`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Job:
    job_id: str
    session_id: str
    status: str
    mode: str = "async"
    priority: str = "normal"
    channel: str = "http"
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    execution_time_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    status_url: str | None = None
    events_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def final_message(self) -> str | None:
        return _str((self.result or {}).get("final_message"))

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact name → gs:// path, as the worker recorded them."""
        return dict((self.result or {}).get("artifacts") or {})

    @property
    def error_message(self) -> str | None:
        return _str((self.error or {}).get("message"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(
            job_id=str(data["job_id"]),
            session_id=str(data.get("session_id", "")),
            status=str(data.get("status", "")),
            mode=str(data.get("mode", "async")),
            priority=str(data.get("priority", "normal")),
            channel=str(data.get("channel", "http")),
            created_at=_str(data.get("created_at")),
            started_at=_str(data.get("started_at")),
            finished_at=_str(data.get("finished_at")),
            execution_time_ms=data.get("execution_time_ms"),
            result=data.get("result"),
            error=data.get("error"),
            metadata=dict(data.get("metadata") or {}),
            status_url=_str(data.get("status_url")),
            events_url=_str(data.get("events_url")),
            raw=data,
        )


@dataclass(frozen=True)
class Submission:
    """The answer to a submission: sync (finished job), async (accepted) or stream (where to
    connect). `replayed` is true when an idempotency key matched an earlier submission."""

    job_id: str
    session_id: str
    mode: str
    status: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    websocket_url: str | None = None
    events_url: str | None = None
    status_url: str | None = None
    webhook_secret: str | None = None
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool = False) -> Submission:
        return cls(
            job_id=str(data.get("job_id") or ""),
            session_id=str(data.get("session_id", "")),
            mode=str(data.get("mode", "")),
            status=_str(data.get("status")),
            stdout=_str(data.get("stdout")),
            stderr=_str(data.get("stderr")),
            exit_code=data.get("exit_code"),
            websocket_url=_str(data.get("websocket_url")),
            events_url=_str(data.get("events_url")),
            status_url=_str(data.get("status_url")),
            webhook_secret=_str(data.get("webhook_secret")),
            replayed=replayed,
            raw=data,
        )


@dataclass(frozen=True)
class Event:
    """One streaming message (SSE `data:` or a WebSocket frame)."""

    message_type: str
    data: dict[str, Any]
    job_id: str | None = None
    seq: int | None = None
    session_id: str | None = None
    codex: dict[str, Any] | None = None
    timestamp: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        """The `complete` event of a terminal state change: nothing follows for this job."""
        return self.message_type == "complete" and self.data.get("status") in TERMINAL

    @property
    def is_heartbeat(self) -> bool:
        return self.message_type == "heartbeat"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        seq = data.get("seq")
        return cls(
            message_type=str(data.get("message_type", data.get("type", ""))),
            data=dict(data.get("data") or {}),
            job_id=_str(data.get("job_id")),
            seq=int(seq) if isinstance(seq, int | str) and str(seq).lstrip("-").isdigit() else None,
            session_id=_str(data.get("session_id")),
            codex=data.get("codex"),
            timestamp=_str(data.get("timestamp")),
            raw=data,
        )


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Artifact:
    name: str
    size: int
    url: str
    content_type: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            name=str(data["name"]),
            size=int(data.get("size", 0)),
            url=str(data.get("url", "")),
            content_type=_str(data.get("content_type")),
        )
