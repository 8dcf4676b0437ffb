"""Free-port selection: another process may hold any default port."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

_handed_out: set[int] = set()
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Ports are picked below the kernel's ephemeral range, from this many ports at most.
_POOL = 12_000
_LOWEST = 10_000


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections and to `bind(port 0)`."""
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now and that this process has not handed out before.

    Picked outside the ephemeral range: a port the kernel chose there (bind to port 0) is free
    only until it hands the same number to someone else's outgoing connection or port-0
    listener (the emulators open such internal ports), and a server started on it a moment
    later then finds it taken, or a client reaches the wrong server.
    """
    low, _ = ephemeral_range()
    start = max(_LOWEST, low - _POOL)
    for _ in range(200):
        port = random.randrange(start, low) if low > start else 0  # noqa: S311 - not secret
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # someone holds it
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
