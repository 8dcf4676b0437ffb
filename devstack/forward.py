"""A small HTTP/1.1 POST client with keep-alive connections per origin, for the local Eventarc
stand-in: every job costs it several forwards, and a general-purpose async client spent more
CPU on each than the function that handled it (measured), CPU the benchmarks would charge to
the pipeline although production's Eventarc is Google's.

Only what the stand-in needs: POST with a body, a response with Content-Length or chunked
encoding, plain http. A connection the server closed while it sat idle is retried once on a
fresh one (the server never read the request); any other failure raises `ForwardError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

READ_CHUNK = 65_536
IDLE_PER_ORIGIN = 16


class ForwardError(Exception):
    """The request could not be delivered or its response could not be read."""


@dataclass
class _Response:
    status: int = 0
    keep_alive: bool = False
    body: list[bytes] = field(default_factory=list)
    complete: bool = False
    parser: httptools.HttpResponseParser | None = None

    # httptools parser callbacks (the parser forgets status and keep-alive once a message ends)
    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.complete = True


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Forwarder:
    def __init__(self, *, timeout_s: float, connect_timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle: dict[tuple[str, int], list[_Conn]] = {}

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """POST `body` to `url`; the response's status and body."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ForwardError(f"unsupported URL {url!r}")
        origin = (parts.hostname, parts.port or 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
        head.extend(f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    conn, reused = await self._connection(origin)
                    try:
                        response, keep = await self._exchange(conn, request)
                    except _StaleConnection:
                        _close(conn)
                        if reused:
                            continue  # closed by the server while idle: it never saw this
                        raise ForwardError("connection closed before a response") from None
                    except BaseException:
                        _close(conn)
                        raise
                    break
        except (OSError, httptools.HttpParserError, TimeoutError) as exc:
            raise ForwardError(f"{type(exc).__name__}: {exc}") from exc
        if keep and len(self._idle.setdefault(origin, [])) < IDLE_PER_ORIGIN:
            self._idle[origin].append(conn)
        else:
            _close(conn)
        return response.status, b"".join(response.body)

    async def aclose(self) -> None:
        conns = [conn for idle in self._idle.values() for conn in idle]
        self._idle.clear()
        for conn in conns:
            _close(conn)
            with contextlib.suppress(Exception):
                await conn[1].wait_closed()

    async def _connection(self, origin: tuple[str, int]) -> tuple[_Conn, bool]:
        idle = self._idle.get(origin) or []
        while idle:
            conn = idle.pop()
            if not conn[0].at_eof() and not conn[1].is_closing():
                return conn, True
            _close(conn)
        async with asyncio.timeout(self._connect_timeout_s):
            return await asyncio.open_connection(*origin), False

    @staticmethod
    async def _exchange(conn: _Conn, request: bytes) -> tuple[_Response, bool]:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        response = _Response()
        parser = response.parser = httptools.HttpResponseParser(response)
        received = False
        while not response.complete:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                if not received:
                    raise _StaleConnection
                raise ForwardError("connection closed mid-response")
            received = True
            parser.feed_data(chunk)
        response.parser = None
        return response, response.keep_alive


class _StaleConnection(Exception):
    pass


def _close(conn: _Conn) -> None:
    with contextlib.suppress(Exception):
        conn[1].close()
