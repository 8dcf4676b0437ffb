"""A lean HTTP/1.1 keep-alive client for the load generator.

The load generator shares the machine with what it measures. A general-purpose client (httpx)
spent 1.6-2.3 ms of CPU per request, more than a whole raw Firestore write (client and emulator
together), so on two cores it was the load generator, not the API, that set the submission
rate. This client does only what the benchmark needs: one connection per worker, requests
built from bytes, responses framed by Content-Length (or chunked), status and body returned.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server answered with something this client cannot frame."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class Connection:
    """One keep-alive connection; requests on it run one at a time."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http://host:port URLs are supported, not {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        host_header = f"{self._host}:{self._port}"
        fixed = {"Host": host_header, "Connection": "keep-alive", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._reader = self._writer = None

    async def post_json(self, path: str, body: bytes) -> Response:
        head = (
            f"POST {path} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        return await self._roundtrip(head + body)

    async def get(self, path: str) -> Response:
        head = f"GET {path} HTTP/1.1\r\n".encode("latin-1") + self._fixed + b"\r\n"
        return await self._roundtrip(head)

    async def _roundtrip(self, request: bytes) -> Response:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(request)
        return await read_response(self._reader)


async def read_response(reader: asyncio.StreamReader) -> Response:
    """One response from the stream: status line, headers, then the framed body."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("connection closed before a complete response head") from exc
    lines = head[:-4].split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0]!r}")
    status = int(status_line[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = await _read_chunked(reader)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        raise ProtocolError("response has neither Content-Length nor chunked encoding")
    return Response(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers (if any) end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
