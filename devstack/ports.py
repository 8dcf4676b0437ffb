"""Free-port selection: another process may hold any default port."""

from __future__ import annotations

import socket
import time

_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now and that this process has not handed out before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def wait_for_port(host: str, port: int, *, timeout_s: float, alive: object = None) -> None:
    """Block until a TCP connect to host:port succeeds (or raise TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if callable(alive) and not alive():
                raise RuntimeError(
                    f"process for {host}:{port} exited before it was ready"
                ) from None
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} not ready after {timeout_s:.0f}s")
