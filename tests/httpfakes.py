"""Tiny in-test HTTP servers (fake workers, webhook receivers, workflow callbacks).

Each server runs on a free port in a thread and records every request; a `responder` decides
the reply, so a test scripts behaviour (fail twice, then succeed) without mocking clients.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class Request:
    method: str
    path: str
    headers: httpx.Headers  # case-insensitive, like the wire
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Reply = tuple[int, Any]
Responder = Callable[[Request], Reply]


@dataclass
class FakeServer:
    url: str
    requests: list[Request] = field(default_factory=list)

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(list(self.requests)):
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met; requests seen: {[r.path for r in self.requests]}")


@contextmanager
def fake_server(responder: Responder) -> Iterator[FakeServer]:
    state: dict[str, FakeServer] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            req = Request(
                self.command, self.path, httpx.Headers(dict(self.headers)), self.rfile.read(length)
            )
            with lock:
                state["server"].requests.append(req)
            status, body = responder(req)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["server"] = FakeServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
