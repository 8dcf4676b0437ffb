"""What the sync and async clients share: request bodies, error decoding, retry policy."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from codex_cloud.errors import ApiError, StreamError, error_class
from codex_cloud.models import Event, Submission
from codex_cloud.sse import SSEMessage

USER_AGENT = "codex-cloud-python/0.1"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_JOB_TIMEOUT_MS = 300_000
# The API answers a sync request at the job's timeout plus its own margin (5 s by default).
SYNC_READ_MARGIN_S = 30.0
# iter_jobs pages: the API's largest page, so a long listing takes few round trips.
ITER_PAGE_SIZE = 200


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for 429/503 answers and refused connections.

    The server's Retry-After wins when present (capped by `max_delay_s`); otherwise exponential
    backoff with jitter. POSTs are only retried when the server refused them before doing
    anything (429/503) — or when an idempotency key makes a replay safe.
    """

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        backoff = self.base_delay_s * (2.0 ** (attempt - 1))
        return min(backoff * (0.5 + random.random() / 2), self.max_delay_s)  # noqa: S311


NO_RETRY = RetryPolicy(attempts=1)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def api_error(response: httpx.Response) -> ApiError:
    """The typed error for an HTTP error answer (problem+json or anything else)."""
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(response.content or b"{}")
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    status = response.status_code
    detail = body.get("detail")
    if not isinstance(detail, str):
        text = response.text.strip() if not body else ""
        detail = text[:300] or response.reason_phrase or f"HTTP {status}"
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    return error_class(status)(
        status,
        type=str(body.get("type", "about:blank")),
        title=str(body.get("title", response.reason_phrase or "")),
        detail=detail,
        code=str(body.get("code", "")),
        errors=errors,
        instance=body.get("instance"),
        trace_id=body.get("trace_id"),
        retry_after_s=retry_after(response.headers.get("retry-after")),
        body=body,
    )


def should_retry(method: str, status: int, idempotent: bool) -> bool:
    if status not in RETRY_STATUSES:
        return False
    # 429 and 503 mean "not processed"; a 502/504 from a proxy may hide a processed POST.
    return method in ("GET", "HEAD", "DELETE") or idempotent or status in (429, 503)


def job_body(prompt: str, **fields: Any) -> dict[str, Any]:
    """A JobRequest body from keyword arguments (None values are left out)."""
    body: dict[str, Any] = {"prompt": prompt}
    for key, value in fields.items():
        if value is not None:
            body[key] = value
    return body


def job_path(job_id: str, suffix: str = "") -> str:
    return f"/v2/jobs/{quote(job_id, safe='')}{suffix}"


def artifact_path(job_id: str, name: str) -> str:
    return job_path(job_id, "/artifacts/" + quote(name, safe="/"))


def artifact_target(dest: Path, name: str) -> Path | None:
    """Where artifact `name` is saved under `dest`; None when the name would escape `dest`."""
    target = (dest / name).resolve()
    return target if target.is_relative_to(dest.resolve()) else None


def save_artifact(target: Path, content: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def submission(response: httpx.Response) -> Submission:
    return Submission.from_json(
        response.json(), replayed=response.headers.get("idempotent-replayed") == "true"
    )


def event_from_sse(message: SSEMessage) -> Event | None:
    try:
        payload = json.loads(message.data)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if message.event == "heartbeat":
        payload.setdefault("message_type", "heartbeat")
    event = Event.from_json(payload)
    if event.seq is None and message.id is not None and message.id.isdigit():
        event = Event.from_json({**payload, "seq": int(message.id)})
    return event


def ws_url_with(url: str, stream_type: str | None) -> str:
    if not stream_type:
        return url
    return f"{url}{'&' if '?' in url else '?'}stream_type={quote(stream_type)}"


def ws_event(raw: str | bytes) -> Event | None:
    """A WebSocket frame as an Event (pongs and unreadable frames are None)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("type") == "pong":
        return None
    return Event.from_json(payload)


def session_event(
    raw: str | bytes, job_ids: list[str], *, include_heartbeats: bool
) -> Event | None:
    """One WebSocket frame of a session turn: the event to hand out, or None to skip the frame.

    Records each new job id on `job_ids`; a session-level error (no job, with a code) ends the
    stream with StreamError."""
    event = ws_event(raw)
    if event is None:
        return None
    if event.job_id and event.job_id not in job_ids:
        job_ids.append(event.job_id)
    if event.message_type == "error" and not event.job_id and "code" in event.data:
        raise StreamError(str(event.data.get("message") or event.data["code"]))
    if event.is_heartbeat and not include_heartbeats:
        return None
    return event


def reason(exc: Exception) -> str:
    """A short, human reason for a transport failure."""
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower() or "connect call failed" in text.lower():
        return "connection refused"
    return text


def submit_timeout(mode: str, timeout_ms: Any, default: httpx.Timeout) -> httpx.Timeout:
    """A sync submission is answered when the job ends: wait as long as the server may."""
    if mode != "sync":
        return default
    job_s = (timeout_ms if isinstance(timeout_ms, int) else DEFAULT_JOB_TIMEOUT_MS) / 1000
    return httpx.Timeout(DEFAULT_TIMEOUT_S, read=job_s + SYNC_READ_MARGIN_S)
