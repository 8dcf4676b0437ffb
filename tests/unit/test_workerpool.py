"""The local worker pool's balancer: each connection goes to the next worker, a worker that
refuses connections is skipped, and requests and answers pass through unchanged."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from devstack.ports import free_port
from devstack.workerpool import parse_backend
from tests.httpfakes import Reply, Request, fake_server


def echo(name: str) -> Callable[[Request], Reply]:
    def respond(req: Request) -> Reply:
        return 200, {"worker": name, "path": req.path, "body": req.body.decode()}

    return respond


@contextmanager
def pool(*backends: str) -> Iterator[str]:
    """The balancer as the local stack runs it: its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.workerpool", "--port", str(port), *backends],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def post(url: str, n: int) -> list[str]:
    # A connection per request, as Cloud Tasks delivers.
    return [
        httpx.post(f"{url}/v1/jobs/j{i}:run", content=b"x" * i, timeout=5).json()["worker"]
        for i in range(n)
    ]


def test_connections_go_to_each_worker_in_turn_and_pass_through_unchanged() -> None:
    with fake_server(echo("a")) as a, fake_server(echo("b")) as b, pool(a.url, b.url) as url:
        picks = post(url, 8)
        reply = httpx.post(f"{url}/v1/jobs/big:run", content=b"y" * 300_000, timeout=5).json()
    assert sorted(picks) == ["a"] * 4 + ["b"] * 4
    assert all(x != y for x, y in itertools.pairwise(picks))
    assert reply["path"] == "/v1/jobs/big:run"
    assert reply["body"] == "y" * 300_000


def test_a_worker_that_refuses_connections_is_skipped() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with fake_server(echo("alive")) as alive, pool(dead, alive.url) as url:
        assert post(url, 4) == ["alive"] * 4


def test_with_no_worker_up_the_connection_is_closed_not_hung() -> None:
    with pool(f"http://127.0.0.1:{free_port()}") as url, pytest.raises(httpx.TransportError):
        httpx.post(url + "/v1/jobs/x:run", timeout=5)


def test_a_backend_needs_a_host_and_port() -> None:
    with pytest.raises(ValueError, match="host and a port"):
        parse_backend("http://worker")
