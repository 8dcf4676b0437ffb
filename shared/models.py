"""The job model: what callers send, what is stored, and what streams back.

Limits are enforced here so every channel (HTTP, Pub/Sub, uploads) rejects the same things
with the same field paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

MAX_PROMPT_CHARS = 100_000
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1_024
MAX_METADATA_BYTES = 16_384
MAX_OUTPUT_SCHEMA_BYTES = 65_536
# Nesting levels (objects and arrays) of an output schema. Real schemas stay far below this;
# much deeper ones would exhaust the stack in the recursive JSON Schema check.
MAX_OUTPUT_SCHEMA_DEPTH = 64
MIN_TIMEOUT_MS = 1_000
MAX_TIMEOUT_MS = 24 * 3_600_000
DEFAULT_TIMEOUT_MS = 300_000

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_SAFE_ID = re.compile(_ID_PATTERN)


class JobStatus(StrEnum):
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT}
)


class Mode(StrEnum):
    SYNC = "sync"
    ASYNC = "async"
    STREAM = "stream"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class Channel(StrEnum):
    HTTP = "http"
    PUBSUB = "pubsub"
    UPLOAD = "upload"


class MessageType(StrEnum):
    """The streaming protocol's message types (shared by SSE and WebSocket)."""

    PROGRESS = "progress"
    OUTPUT = "output"
    ERROR = "error"
    COMPLETE = "complete"
    HEARTBEAT = "heartbeat"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class EmptyWorkspace(_Model):
    type: Literal["empty"] = "empty"


class GitWorkspace(_Model):
    type: Literal["git"] = "git"
    url: str = Field(min_length=1, max_length=2048)
    ref: str = Field(default="HEAD", min_length=1, max_length=255)

    @field_validator("url")
    @classmethod
    def _no_option_injection(cls, value: str) -> str:
        # A URL starting with "-" would be read by git as an option.
        if value.startswith("-"):
            raise ValueError("must not start with '-'")
        return value

    @field_validator("ref")
    @classmethod
    def _safe_ref(cls, value: str) -> str:
        if value.startswith("-") or ".." in value or any(c.isspace() for c in value):
            raise ValueError("not a valid git ref")
        return value


class ArchiveWorkspace(_Model):
    """A tar.gz or zip object in the uploads bucket, unpacked into the job's workspace."""

    type: Literal["archive"] = "archive"
    object: str = Field(min_length=1, max_length=1024)
    bucket: str | None = Field(default=None, max_length=222)
    # The object version to unpack; the latest when omitted. An upload job pins the version
    # that was dropped, so overwriting the name later does not change what an earlier job runs.
    generation: int | None = Field(default=None, ge=1)


WorkspaceInput = Annotated[
    EmptyWorkspace | GitWorkspace | ArchiveWorkspace, Field(discriminator="type")
]


class WebhookSpec(_Model):
    url: str = Field(min_length=1, max_length=2048)
    # Per-job HMAC secret; generated when omitted and returned once on creation.
    secret: str | None = Field(default=None, min_length=16, max_length=256)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        # Refuse here what URL parsing cannot take apart (`http://[::1`, `https://[evil]/`, a
        # port above 65535), so no later check or delivery attempt trips over it.
        try:
            parts = urlsplit(value)
            host = parts.hostname
            _ = parts.port
        except ValueError:
            host = None
        if not host:
            raise ValueError("must be an http(s) URL with a valid host and port")
        return value


class JobRequest(_Model):
    """What a caller asks for, identical across HTTP, Pub/Sub and upload specs."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    mode: Mode = Mode.ASYNC
    timeout_ms: int = Field(default=DEFAULT_TIMEOUT_MS, ge=MIN_TIMEOUT_MS, le=MAX_TIMEOUT_MS)
    priority: Priority = Priority.NORMAL
    metadata: dict[str, str] = Field(default_factory=dict)
    session_id: str | None = Field(default=None, pattern=_ID_PATTERN)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    workspace: WorkspaceInput = Field(default_factory=EmptyWorkspace)
    webhook: WebhookSpec | None = None
    output_schema: dict[str, Any] | None = None
    long_running: bool | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=10)

    # Defined first so it runs before the field checks below, some of which encode text.
    @field_validator("*")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        # A JSON escape such as "\ud800" decodes to a lone surrogate, which has no UTF-8 form:
        # such a request could be neither fingerprinted, stored nor sent on.
        if _has_lone_surrogate(value):
            raise ValueError("must be valid Unicode text (contains a lone surrogate)")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        # Invisible format characters (zero-width space/joiners, BOM) do not make a prompt.
        visible = "".join(c for c in value if unicodedata.category(c) != "Cf")
        if not visible.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        for key, item in value.items():
            if not key or len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys must be 1..{MAX_METADATA_KEY_CHARS} characters")
            if len(item) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"values must be at most {MAX_METADATA_VALUE_CHARS} characters")
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"at most {MAX_METADATA_BYTES} bytes in total")
        return value

    @field_validator("output_schema")
    @classmethod
    def _schema_limits(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        # First: the size and schema checks below both recurse through the value.
        if _nesting_depth(value) > MAX_OUTPUT_SCHEMA_DEPTH:
            raise ValueError(f"at most {MAX_OUTPUT_SCHEMA_DEPTH} levels of nesting")
        if len(json.dumps(value).encode()) > MAX_OUTPUT_SCHEMA_BYTES:
            raise ValueError(f"at most {MAX_OUTPUT_SCHEMA_BYTES} bytes")
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        except RecursionError:
            # Backstop for a caller already deep in its stack; the depth limit normally holds.
            raise ValueError(f"at most {MAX_OUTPUT_SCHEMA_DEPTH} levels of nesting") from None
        return value

    def fingerprint(self) -> str:
        """Stable hash of what the job does, used to tell a replay from a conflicting reuse
        of the same idempotency key."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        if body.get("webhook"):
            body["webhook"].pop("secret", None)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def is_long(self, threshold_ms: int) -> bool:
        if self.long_running is not None:
            return self.long_running
        return self.timeout_ms > threshold_ms


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, BaseModel):
        return list(value.__dict__.values())
    return []


def _has_lone_surrogate(value: Any) -> bool:
    # Iterative: a value may be nested deeper than the recursion limit.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
        else:
            pending.extend(_children(item))
    return False


def _nesting_depth(value: Any) -> int:
    """Levels of dicts and lists in a JSON value (0 for a scalar), counted iteratively."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


class JobError(_Model):
    code: str
    message: str
    retryable: bool = False


class TokenUsage(_Model):
    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0


class JobResult(_Model):
    exit_code: int | None = None
    final_message: str | None = None
    usage: TokenUsage | None = None
    changed_files: list[str] = Field(default_factory=list)
    duration_ms: int | None = None
    attempt: int = 0
    structured_output: Any = None
    thread_id: str | None = None
    stderr_tail: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    # Fields shortened to fit the job document (Firestore's 1 MiB limit); the artifacts hold
    # them whole (final-message.txt, diff.patch, changes.tar.gz).
    truncated: list[str] = Field(default_factory=list)


class JobRecord(_Model):
    """A stored job: the request plus lifecycle, lease and outcome fields."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    tenant: str
    channel: Channel
    status: JobStatus
    request: JobRequest
    request_hash: str
    idempotency_key: str | None = None
    session_id: str
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime
    attempt: int = 0
    max_attempts: int = 3
    route: Literal["tasks", "workflows"] = "tasks"
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    cancel_requested: bool = False
    next_seq: int = 0
    source: dict[str, Any] = Field(default_factory=dict)
    result: JobResult | None = None
    error: JobError | None = None
    webhook_secret: str | None = None


class JobEvent(_Model):
    """One entry of `jobs/{id}/events/{seq}`: a streaming message with the raw codex item."""

    model_config = ConfigDict(extra="ignore")

    seq: int
    job_id: str
    message_type: MessageType
    data: dict[str, Any] = Field(default_factory=dict)
    codex: dict[str, Any] | None = None
    timestamp: datetime
    attempt: int = 0

    @property
    def event_id(self) -> str:
        return event_id_for(self.seq)


class EventDraft(_Model):
    """An event before the store gives it a sequence number."""

    message_type: MessageType
    data: dict[str, Any] = Field(default_factory=dict)
    codex: dict[str, Any] | None = None


def event_id_for(seq: int) -> str:
    # Zero-padded so document ids sort in sequence order.
    return f"{seq:010d}"


def is_safe_id(value: str) -> bool:
    return bool(_SAFE_ID.match(value))
