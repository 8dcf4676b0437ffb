"""The load generator's HTTP client: keep-alive requests framed by length or chunks."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.rawhttp import Connection, ProtocolError


async def _serve(responses: list[bytes], seen: list[bytes]) -> tuple[asyncio.Server, str]:
    """A server that answers each request on a connection with the next canned response."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            seen.append(head + await reader.readexactly(length))
            writer.write(response)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def test_requests_share_one_connection_and_bodies_are_framed() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n6;ext=1\r\npedia!\r\n0\r\n\r\n"
    )
    sized = b'HTTP/1.1 202 Accepted\r\ncontent-length: 11\r\n\r\n{"id": "a"}'
    seen: list[bytes] = []

    async def scenario() -> tuple[int, bytes, int, bytes]:
        server, url = await _serve([sized, chunked], seen)
        async with server:
            conn = Connection(url, {"X-API-KEY": "k1"})
            first = await conn.post_json("/v2/exec", json.dumps({"prompt": "p"}).encode())
            second = await conn.get("/v2/jobs")
            await conn.close()
        return first.status, first.body, second.status, second.body

    status1, body1, status2, body2 = asyncio.run(scenario())

    assert (status1, json.loads(body1)) == (202, {"id": "a"})
    assert (status2, body2) == (200, b"Wikipedia!")
    # Both requests arrived on the one connection, with the key and the exact body.
    assert len(seen) == 2
    assert seen[0].startswith(b"POST /v2/exec HTTP/1.1\r\n")
    assert b"X-API-KEY: k1\r\n" in seen[0]
    assert seen[0].endswith(b'\r\n\r\n{"prompt": "p"}')
    assert seen[1].startswith(b"GET /v2/jobs HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "response",
    [b"HTTP/1.1 200 OK\r\n\r\nno framing", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\n"],
)
def test_a_response_that_cannot_be_framed_is_an_error(response: bytes) -> None:
    async def scenario() -> None:
        server, url = await _serve([response], [])
        async with server:
            conn = Connection(url)
            try:
                await conn.get("/")
            finally:
                await conn.close()

    with pytest.raises(ProtocolError):
        asyncio.run(scenario())


def test_only_plain_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="plain http"):
        Connection("https://example.com")
