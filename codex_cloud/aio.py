"""The asyncio client: the same API as `codex_cloud.Client`, with `await` / `async for`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from codex_cloud import _core
from codex_cloud._core import DEFAULT_TIMEOUT_S, RetryPolicy
from codex_cloud.client import SSE_READ_TIMEOUT_S, default_url
from codex_cloud.errors import ConnectionFailed, StreamError
from codex_cloud.models import Artifact, Event, Job, JobPage, Submission
from codex_cloud.sse import SSEDecoder


class AsyncClient:
    """`async with AsyncClient(base_url, api_key) as cc: job = await cc.run("...")`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        import os

        self.base_url = (base_url or default_url()).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("CODEX_CLOUD_API_KEY")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        headers = {"User-Agent": _core.USER_AGENT}
        if self.api_key:
            headers["X-API-KEY"] = self.api_key
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
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
                response = await self._http.request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers=headers,
                    timeout=http_timeout or self._http.timeout,
                )
            except httpx.ConnectError as exc:
                if attempt >= self.retry.attempts:
                    raise ConnectionFailed(self.base_url, _core.reason(exc)) from None
                await self._sleep(self.retry.delay(attempt, None))
                continue
            except httpx.TransportError as exc:
                raise ConnectionFailed(self.base_url, _core.reason(exc)) from None
            if response.status_code < 400:
                return response
            error = _core.api_error(response)
            if attempt < self.retry.attempts and _core.should_retry(
                method, response.status_code, idempotent
            ):
                await self._sleep(self.retry.delay(attempt, error.retry_after_s))
                continue
            raise error

    async def submit(
        self,
        prompt: str,
        *,
        mode: str = "async",
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Submission:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._request(
            "POST",
            "/v2/exec",
            json_body=_core.job_body(prompt, mode=mode, **fields),
            headers=headers,
            idempotent=idempotency_key is not None,
            http_timeout=_core.submit_timeout(mode, fields.get("timeout_ms"), self._http.timeout),
        )
        return _core.submission(response)

    async def get(self, job_id: str) -> Job:
        return Job.from_json((await self._request("GET", _core.job_path(job_id))).json())

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        params = {"status": status, "channel": channel, "limit": limit, "cursor": cursor}
        response = await self._request(
            "GET", "/v2/jobs", params={k: v for k, v in params.items() if v is not None}
        )
        data = response.json()
        return JobPage([Job.from_json(j) for j in data.get("jobs", [])], data.get("next_cursor"))

    async def iter_jobs(
        self, *, status: str | None = None, channel: str | None = None
    ) -> AsyncIterator[Job]:
        """Every job, newest first, page by page (`async for job in cc.iter_jobs()`)."""
        cursor: str | None = None
        while True:
            page = await self.list_jobs(
                status=status, channel=channel, limit=_core.ITER_PAGE_SIZE, cursor=cursor
            )
            for job in page.jobs:
                yield job
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: str) -> Job:
        response = await self._request("POST", _core.job_path(job_id, ":cancel"))
        return Job.from_json(response.json())

    async def artifacts(self, job_id: str) -> list[Artifact]:
        data = (await self._request("GET", _core.job_path(job_id, "/artifacts"))).json()
        return [Artifact.from_json(a) for a in data.get("artifacts", [])]

    async def download_artifact(self, job_id: str, name: str) -> bytes:
        response = await self._request("GET", _core.artifact_path(job_id, name))
        if response.status_code == 302:
            async with httpx.AsyncClient(timeout=self._http.timeout) as plain:
                signed = await plain.get(response.headers["location"])
                return signed.raise_for_status().content
        return response.content

    async def download_artifacts(self, job_id: str, dest: Path) -> list[Path]:
        written = []
        for artifact in await self.artifacts(job_id):
            target = _core.artifact_target(dest, artifact.name)
            if target is None:
                continue  # never write outside the destination
            content = await self.download_artifact(job_id, artifact.name)
            # File I/O off the event loop: artifacts can be large.
            await asyncio.to_thread(_core.save_artifact, target, content)
            written.append(target)
        return written

    async def events(
        self,
        job_id: str,
        *,
        after: int = -1,
        include_heartbeats: bool = False,
        reconnects: int = 10,
    ) -> AsyncIterator[Event]:
        """Like `Client.events`: SSE with automatic resume from the last event id."""
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
                async with self._http.stream(
                    "GET", path, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        error = _core.api_error(response)
                        if response.status_code in _core.RETRY_STATUSES and failures < reconnects:
                            failures += 1
                            await self._sleep(self.retry.delay(failures, error.retry_after_s))
                            continue
                        raise error
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
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
                                continue
                            last = event.seq
                        fresh = True
                        yield event
                        if event.is_final:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > reconnects:
                    raise ConnectionFailed(self.base_url, _core.reason(exc)) from None
                await self._sleep(self.retry.delay(failures, None))
                continue
            if not fresh and (await self.get(job_id)).terminal:
                return

    async def wait(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> Job:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        async for event in self.events(job_id, include_heartbeats=True):
            if on_event is not None:
                on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                break
        return await self.get(job_id)

    async def run(
        self, prompt: str, *, on_event: Callable[[Event], None] | None = None, **fields: Any
    ) -> Job:
        submitted = await self.submit(prompt, mode="async", **fields)
        return await self.wait(submitted.job_id, on_event=on_event)

    async def stream(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        stream_type: str | None = None,
        open_timeout_s: float = 10.0,
        **fields: Any,
    ) -> AsyncStreamSession:
        submitted = await self.submit(prompt, mode="stream", session_id=session_id, **fields)
        if not submitted.websocket_url:
            raise StreamError("the API did not return a websocket_url")
        url = _core.ws_url_with(submitted.websocket_url, stream_type)
        try:
            ws = await connect(url, open_timeout=open_timeout_s, max_size=8 * 1024 * 1024)
        except InvalidStatus as exc:
            raise StreamError(f"WebSocket refused: HTTP {exc.response.status_code}") from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise StreamError(f"cannot open the WebSocket: {exc}") from None
        return AsyncStreamSession(ws, submitted)

    async def health(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._request("GET", "/health")).json()
        return data


class AsyncStreamSession:
    def __init__(self, ws: ClientConnection, first: Submission) -> None:
        self._ws = ws
        self.first = first
        self.session_id = first.session_id
        self.job_ids: list[str] = [first.job_id] if first.job_id else []

    async def __aenter__(self) -> AsyncStreamSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, prompt: str, **fields: Any) -> None:
        await self._ws.send(json.dumps(_core.job_body(prompt, **fields)))

    async def cancel(self) -> None:
        await self._ws.send(json.dumps({"type": "cancel"}))

    async def ping(self) -> None:
        await self._ws.send(json.dumps({"type": "ping"}))

    async def events(
        self, *, timeout_s: float | None = None, include_heartbeats: bool = False
    ) -> AsyncIterator[Event]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = await asyncio.wait_for(self._ws.recv(), timeout=remaining)
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

    async def close(self) -> None:
        await self._ws.close()
