"""Local-stack port picking: free now, never handed out twice, and outside the range the kernel
gives to outgoing connections and port-0 listeners (where a picked port could be taken by
someone else before our server binds it)."""

from __future__ import annotations

import socket

import pytest

from devstack.ports import ephemeral_range, free_port

pytestmark = pytest.mark.unit


def test_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    # Where the ephemeral range leaves no room below it, the kernel's pick is the fallback.
    if low > 10_000:
        assert all(p < low for p in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # still free
