"""The Eventarc stand-in's HTTP client against real local sockets: keep-alive reuse, a
connection the server dropped while idle, chunked bodies, unreachable targets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from devstack.forward import Forwarder, ForwardError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _stop(server: asyncio.Server, client: Forwarder) -> None:
    await client.aclose()
    await asyncio.sleep(0.05)  # the handlers see their connections end
    server.close()
    await server.wait_closed()


def test_posts_reuse_one_connection_and_carry_headers_and_body() -> None:
    connections = 0
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                request = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request)
            reply = b"got " + request[2]
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)
            await writer.drain()

    async def run() -> list[tuple[int, bytes]]:
        server, base = await _serve(handler)
        client = Forwarder(timeout_s=5, connect_timeout_s=2)
        try:
            return [
                await client.post(f"{base}/t/{n}?q=1", {"ce-id": str(n)}, b"body%d" % n)
                for n in range(3)
            ]
        finally:
            await _stop(server, client)

    results = asyncio.run(run())
    assert results == [(201, b"got body0"), (201, b"got body1"), (201, b"got body2")]
    assert connections == 1
    assert [s[0] for s in seen] == [f"POST /t/{n}?q=1 HTTP/1.1" for n in range(3)]
    assert seen[2][1]["ce-id"] == "2"
    assert seen[2][1]["content-length"] == "5"


def test_a_connection_dropped_while_idle_is_replaced_and_chunked_replies_are_read() -> None:
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers one request per connection, chunked, then closes it without saying so (as a
        # server whose keep-alive timer fired would).
        nonlocal requests
        await _read_request(reader)
        requests += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()

    async def run() -> list[tuple[int, bytes]]:
        server, base = await _serve(handler)
        client = Forwarder(timeout_s=5, connect_timeout_s=2)
        try:
            first = await client.post(base + "/", {}, b"x")
            await asyncio.sleep(0.05)  # the close reaches the idle connection
            return [first, await client.post(base + "/", {}, b"y")]
        finally:
            await _stop(server, client)

    assert asyncio.run(run()) == [(200, b"abcde"), (200, b"abcde")]
    assert requests == 2  # each delivered once


def test_a_server_that_closes_without_answering_or_is_absent_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]

    async def run() -> list[str]:
        server, base = await _serve(handler)
        client = Forwarder(timeout_s=5, connect_timeout_s=2)
        errors = []
        for url in (base + "/", f"http://127.0.0.1:{closed_port}/", "https://example.invalid/"):
            with pytest.raises(ForwardError) as info:
                await client.post(url, {}, b"z")
            errors.append(str(info.value))
        await _stop(server, client)
        return errors

    errors = asyncio.run(run())
    assert "closed before a response" in errors[0]
    assert "unsupported URL" in errors[2]


def test_a_server_that_never_answers_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    async def run() -> None:
        server, base = await _serve(handler)
        client = Forwarder(timeout_s=0.2, connect_timeout_s=2)
        try:
            with pytest.raises(ForwardError, match="TimeoutError"):
                await client.post(base + "/", {}, b"")
        finally:
            await _stop(server, client)

    asyncio.run(run())
