"""The synchronous client over the HTTP API (httpx) and WebSocket sessions (websockets)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from codex_cloud import _core
from codex_cloud._core import DEFAULT_TIMEOUT_S, RetryPolicy
from codex_cloud.errors import ApiError, ConnectionFailed, StreamError
from codex_cloud.models import Artifact, Event, Job, JobPage, Submission
from codex_cloud.sse import SSEDecoder

DEFAULT_URL = "http://127.0.0.1:8000"
# The API sends a heartbeat at least every 15 s; silence for this long means a dead stream.
SSE_READ_TIMEOUT_S = 60.0


def default_url() -> str:
    return (
        os.environ.get("CODEX_CLOUD_API_URL")
        or os.environ.get("CODEX_CLOUD_API_BASE_URL")
        or DEFAULT_URL
    )


class Client:
    """`Client(base_url, api_key)`; both default to `CODEX_CLOUD_API_URL`/`CODEX_CLOUD_API_KEY`.

    Every method raises a subclass of `codex_cloud.errors.ClientError`: `ApiError` (with the
    problem+json fields) for error answers, `ConnectionFailed` when the API is unreachable.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("CODEX_CLOUD_API_KEY")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        headers = {"User-Agent": _core.USER_AGENT}
        if self.api_key:
            headers["X-API-KEY"] = self.api_key
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- plumbing ----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        http_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers=headers,
                    timeout=http_timeout or self._http.timeout,
                )
            except httpx.ConnectError as exc:
                # Nothing was sent: always safe to try again.
                if attempt >= self.retry.attempts:
                    raise ConnectionFailed(self.base_url, _core.reason(exc)) from None
                self._sleep(self.retry.delay(attempt, None))
                continue
            except httpx.TransportError as exc:
                raise ConnectionFailed(self.base_url, _core.reason(exc)) from None
            if response.status_code < 400:
                return response
            error = _core.api_error(response)
            if attempt < self.retry.attempts and _core.should_retry(
                method, response.status_code, idempotent
            ):
                self._sleep(self.retry.delay(attempt, error.retry_after_s))
                continue
            raise error

    # ---- jobs --------------------------------------------------------------------------

    def submit(
        self,
        prompt: str,
        *,
        mode: str = "async",
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Submission:
        """Submit a job. `fields` are JobRequest fields: priority, timeout_ms, session_id,
        workspace, webhook, output_schema, metadata, long_running, max_attempts."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._request(
            "POST",
            "/v2/exec",
            json_body=_core.job_body(prompt, mode=mode, **fields),
            headers=headers,
            idempotent=idempotency_key is not None,
            http_timeout=_core.submit_timeout(mode, fields.get("timeout_ms"), self._http.timeout),
        )
        return _core.submission(response)

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", _core.job_path(job_id)).json())

    def list_jobs(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        params = {"status": status, "channel": channel, "limit": limit, "cursor": cursor}
        data = self._request(
            "GET", "/v2/jobs", params={k: v for k, v in params.items() if v is not None}
        ).json()
        return JobPage([Job.from_json(j) for j in data.get("jobs", [])], data.get("next_cursor"))

    def iter_jobs(self, *, status: str | None = None, channel: str | None = None) -> Iterator[Job]:
        cursor: str | None = None
        while True:
            page = self.list_jobs(
                status=status, channel=channel, limit=_core.ITER_PAGE_SIZE, cursor=cursor
            )
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        return Job.from_json(self._request("POST", _core.job_path(job_id, ":cancel")).json())

    def artifacts(self, job_id: str) -> list[Artifact]:
        data = self._request("GET", _core.job_path(job_id, "/artifacts")).json()
        return [Artifact.from_json(a) for a in data.get("artifacts", [])]

    def download_artifact(self, job_id: str, name: str) -> bytes:
        response = self._request("GET", _core.artifact_path(job_id, name))
        if response.status_code == 302:  # a signed URL: fetch it without our credentials
            with httpx.Client(timeout=self._http.timeout) as plain:
                return plain.get(response.headers["location"]).raise_for_status().content
        return response.content

    def download_artifacts(self, job_id: str, dest: Path) -> list[Path]:
        written = []
        for artifact in self.artifacts(job_id):
            target = _core.artifact_target(dest, artifact.name)
            if target is None:
                continue  # never write outside the destination
            _core.save_artifact(target, self.download_artifact(job_id, artifact.name))
            written.append(target)
        return written

    # ---- events ------------------------------------------------------------------------

    def events(
        self,
        job_id: str,
        *,
        after: int = -1,
        include_heartbeats: bool = False,
        reconnects: int = 10,
    ) -> Iterator[Event]:
        """The job's events over SSE, from after sequence number `after`, until its final event.

        A dropped connection is resumed with `Last-Event-ID` (bounded by `reconnects` in a row),
        so every event arrives once and in order.
        """
        last = after
        failures = 0
        path = _core.job_path(job_id, "/events")
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=SSE_READ_TIMEOUT_S)
        while True:
            headers = {"Accept": "text/event-stream"}
            if last >= 0:
                headers["Last-Event-ID"] = str(last)
            fresh = False
            try:
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = _core.api_error(response)
                        if response.status_code in _core.RETRY_STATUSES and failures < reconnects:
                            failures += 1
                            self._sleep(self.retry.delay(failures, error.retry_after_s))
                            continue
                        raise error
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        message = decoder.feed(line)
                        event = _core.event_from_sse(message) if message else None
                        if event is None:
                            continue
                        failures = 0
                        if event.is_heartbeat:
                            if include_heartbeats:
                                yield event
                            continue
                        if event.seq is not None:
                            if event.seq <= last:
                                continue  # already delivered before a reconnect
                            last = event.seq
                        fresh = True
                        yield event
                        if event.is_final:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > reconnects:
                    raise ConnectionFailed(self.base_url, _core.reason(exc)) from None
                self._sleep(self.retry.delay(failures, None))
                continue
            # The server ended the stream without the final event (a proxy's idle cut, or a
            # replay of a finished job): done when the job is over and nothing new came.
            if not fresh and self.get(job_id).terminal:
                return

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> Job:
        """Follow the job's events until it finishes (or `timeout_s` passes); the latest job."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for event in self.events(job_id, include_heartbeats=True):
            if on_event is not None:
                on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                break
        return self.get(job_id)

    def run(
        self, prompt: str, *, on_event: Callable[[Event], None] | None = None, **fields: Any
    ) -> Job:
        """Submit asynchronously and wait for the outcome."""
        submitted = self.submit(prompt, mode="async", **fields)
        return self.wait(submitted.job_id, on_event=on_event)

    # ---- WebSocket sessions ------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        stream_type: str | None = None,
        open_timeout_s: float = 10.0,
        **fields: Any,
    ) -> StreamSession:
        """Start a WebSocket session with its first prompt; more prompts go over `send()`."""
        submitted = self.submit(prompt, mode="stream", session_id=session_id, **fields)
        if not submitted.websocket_url:
            raise StreamError("the API did not return a websocket_url")
        url = _core.ws_url_with(submitted.websocket_url, stream_type)
        try:
            # Entered here and left by StreamSession.close(): the session outlives this call.
            ws = connect(url, open_timeout=open_timeout_s, max_size=8 * 1024 * 1024).__enter__()
        except InvalidStatus as exc:
            raise StreamError(f"WebSocket refused: HTTP {exc.response.status_code}") from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise StreamError(f"cannot open the WebSocket: {exc}") from None
        return StreamSession(ws, submitted)

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._request("GET", "/health").json()
        return data


class StreamSession:
    """One WebSocket session: `events()` follows the current turn; `send()` starts the next."""

    def __init__(self, ws: ClientConnection, first: Submission) -> None:
        self._ws = ws
        self.first = first
        self.session_id = first.session_id
        self.job_ids: list[str] = [first.job_id] if first.job_id else []

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, prompt: str, **fields: Any) -> None:
        """Queue a follow-up prompt on this session (runs after the current one)."""
        self._ws.send(json.dumps(_core.job_body(prompt, **fields)))

    def cancel(self) -> None:
        self._ws.send(json.dumps({"type": "cancel"}))

    def ping(self) -> None:
        self._ws.send(json.dumps({"type": "ping"}))

    def events(
        self, *, timeout_s: float | None = None, include_heartbeats: bool = False
    ) -> Iterator[Event]:
        """Messages of the current turn, up to and including its final `complete` event."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = self._ws.recv(timeout=remaining)
            except TimeoutError:
                raise StreamError("no final event before the timeout") from None
            except ConnectionClosed as exc:
                raise StreamError(f"the WebSocket closed ({exc.rcvd})") from None
            event = _core.session_event(raw, self.job_ids, include_heartbeats=include_heartbeats)
            if event is None:
                continue
            yield event
            if event.is_final:
                return

    def close(self) -> None:
        self._ws.close()


__all__ = ["ApiError", "Client", "StreamSession"]
