"""Response and admin request models: the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models import MessageType


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(_Out):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    trace_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation problems: `loc` (field path) and `msg`."
    )


class SyncResult(_Out):
    session_id: str
    mode: str
    job_id: str
    status: str
    exit_code: int | None
    stdout: str = Field(description="The agent's final message.")
    stderr: str = Field(description="The error message, or the tail of codex's stderr.")
    execution_time_ms: int | None
    result: dict[str, Any] | None


class AsyncAccepted(_Out):
    session_id: str
    mode: str
    job_id: str
    status: str
    estimated_completion: datetime = Field(description="Latest completion time (the deadline).")
    status_url: str
    events_url: str
    webhook_secret: str | None = Field(
        default=None, description="Generated webhook signing secret; returned only once."
    )


class StreamAccepted(_Out):
    session_id: str
    mode: str
    job_id: str | None = None
    websocket_url: str
    connection_token: str
    token_expires_at: datetime
    events_url: str | None = None
    webhook_secret: str | None = None


class JobView(_Out):
    job_id: str
    session_id: str
    status: str
    mode: str
    priority: str
    channel: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline_at: datetime
    attempt: int
    max_attempts: int
    cancel_requested: bool
    metadata: dict[str, str]
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    execution_time_ms: int | None = None
    status_url: str
    events_url: str


class JobList(_Out):
    jobs: list[JobView]
    next_cursor: str | None = None


class Artifact(_Out):
    name: str
    size: int
    content_type: str | None = None
    url: str


class ArtifactList(_Out):
    job_id: str
    artifacts: list[Artifact]


class Health(_Out):
    status: str


class Ready(_Out):
    status: str
    checks: dict[str, str]


class ConnectionInfo(_Out):
    connection_id: str
    session_id: str
    tenant: str
    key_id: str
    connected_at: str
    stream_type: str
    jobs_started: int
    instance_id: str = Field(description="The API instance (server process) holding it.")


_SCOPE = (
    "Which instances answered: `all`; `partial` (some did not answer in time); `instance` "
    "(only the answering one: Redis, which carries the request to the others, is unreachable)."
)


class ConnectionList(_Out):
    connections: list[ConnectionInfo]
    scope: str = Field(description=_SCOPE)
    instances: int = Field(description="API instances asked.")


class BroadcastTarget(StrEnum):
    ALL = "all"
    SESSION = "session"
    TENANT = "tenant"


class BroadcastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: BroadcastTarget = BroadcastTarget.ALL
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Required for target tenant; with target session, only that tenant's "
        "session is reached (session ids are chosen by clients, so tenants may share one).",
    )
    message_type: MessageType = MessageType.PROGRESS
    data: dict[str, Any] = Field(default_factory=dict)


class BroadcastResult(_Out):
    target: str
    delivered: int = Field(description="Connections the message was sent to, on every instance.")
    instances: int = Field(description="API instances asked.")
    scope: str = Field(description=_SCOPE)


class StreamMessage(_Out):
    """One streaming message: an SSE event's `data` (as JSON text) and a WebSocket frame."""

    session_id: str
    job_id: str | None = None
    seq: int | None = Field(default=None, description="The event's sequence number (SSE `id`).")
    message_type: MessageType
    data: dict[str, Any]
    codex: dict[str, Any] | None = Field(default=None, description="The raw codex JSON event.")
    timestamp: datetime


SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "One Server-Sent Event. Job events carry `id` (the sequence number) and no `event` "
        "field; keepalives are `event: heartbeat` without an id. `data` is a StreamMessage."
    ),
    "required": ["data"],
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/StreamMessage"},
        },
    },
}
