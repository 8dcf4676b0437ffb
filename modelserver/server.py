"""Run the scripted model server on 127.0.0.1 in a background thread (tests, demo)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from modelserver.app import ServerState, create_app
from modelserver.scripts import Script, ScriptRegistry

logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = 10.0
# Streams parked in a `hang` reply notice shutdown within ~0.1 s; this only bounds stragglers.
_GRACEFUL_SHUTDOWN_S = 2


def bind_free_port(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a port the kernel picked, so parallel runs never collide."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class ModelServer:
    """The scripted server in a daemon thread; use as a context manager or start()/stop()."""

    def __init__(
        self,
        registry: ScriptRegistry | None = None,
        *,
        script_dirs: Iterable[Path] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.registry = (
            registry if registry is not None else ScriptRegistry.with_builtins(script_dirs)
        )
        self.state = ServerState(registry=self.registry)
        self.host = host
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What codex's model provider `base_url` should be."""
        return f"{self.url}/v1"

    def start(self) -> ModelServer:
        sock = bind_free_port(self.host)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.registry, state=self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        server = uvicorn.Server(config)
        self._server = server

        def serve() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"modelserver-{self.port}", daemon=True)
        self._thread.start()
        self._wait_ready()
        logger.info("model server listening on %s", self.url)
        return self

    def _wait_ready(self) -> None:
        server = self._server
        assert server is not None
        deadline = _STARTUP_TIMEOUT_S
        step = 0.01
        waited = 0.0
        while not server.started:
            if self._thread is not None and not self._thread.is_alive():
                raise RuntimeError("model server thread exited during start-up")
            if waited > deadline:
                raise TimeoutError(f"model server not ready after {deadline} s")
            threading.Event().wait(step)
            waited += step

    def stop(self) -> None:
        self.state.shutting_down.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_GRACEFUL_SHUTDOWN_S + 5)
            if self._thread.is_alive():
                logger.warning("model server thread did not stop in time")
        self._server = None
        self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def register(self, script: Script | Mapping[str, Any]) -> Script:
        return self.registry.register(script)

    def requests(self) -> dict[str, Any]:
        """The admin view of served requests (same shape as GET /_admin/requests)."""
        return self.state.snapshot()

    def request_count(self, script: str | None = None) -> int:
        snap = self.state.snapshot()
        return int(snap["count"] if script is None else snap["per_script"].get(script, 0))

    def reset(self) -> None:
        self.state.reset()

    def fetch_json(self, path: str) -> Any:
        """GET a JSON document from the running server over HTTP (checks the real endpoints)."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as resp:  # noqa: S310
            return json.loads(resp.read())
