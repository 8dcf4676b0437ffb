"""The local stand-in for the worker pool's load balancer (the GKE Ingress in production):
one port in front of every local worker, each new connection handed to the next worker in
turn. A worker that refuses the connection (killed, not up yet) is skipped, as a load balancer
skips an endpoint failing its health check.

Connection-level round robin is enough here: Cloud Tasks (and the local Tasks emulator) opens
a connection per delivery, so each task is a fresh pick, and the retry of a task a full worker
refused (429) is picked afresh (usually another worker; deliveries in between take turns too).

    python -m devstack.workerpool --port P http://127.0.0.1:A http://127.0.0.1:B ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from shared.log import configure_logging

log = logging.getLogger("devstack.workerpool")
CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 5.0


class RoundRobin:
    """Backends taken in turn; `connect` tries each at most once, starting with the next."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        if not backends:
            raise ValueError("the pool needs at least one backend")
        self.backends = backends
        self._turn = 0

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        start, n = self._turn, len(self.backends)
        self._turn = (start + 1) % n
        for i in range(n):
            host, port = self.backends[(start + i) % n]
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                continue
        raise ConnectionError("no worker accepted the connection")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the half-close on (the other way may still talk).
    A reset is passed on as a reset: a clean close would make a cut-off answer look whole."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _serve(
    pool: RoundRobin, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
) -> None:
    try:
        backend_r, backend_w = await pool.connect()
    except ConnectionError as exc:
        log.warning("connection dropped: %s", exc)
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, backend_w), _pipe(backend_r, client_w))
    finally:
        for w in (backend_w, client_w):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()


def parse_backend(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"backend {url!r} needs a host and a port")
    return parts.hostname, parts.port


async def run(host: str, port: int, backends: list[tuple[str, int]]) -> None:
    pool = RoundRobin(backends)
    server = await asyncio.start_server(lambda r, w: _serve(pool, r, w), host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="devstack.workerpool", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("backends", nargs="+", help="worker base URLs")
    args = parser.parse_args()
    configure_logging("INFO")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.host, args.port, [parse_backend(u) for u in args.backends]))


if __name__ == "__main__":
    main()
