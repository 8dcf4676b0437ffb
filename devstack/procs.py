"""Child processes of the local stack: started in their own process group, logged to files,
and always stopped by PID (SIGTERM to the group, then SIGKILL)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import wait_for_port

log = logging.getLogger(__name__)


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            # Own process group: Java emulators and codex fork children we must also stop.
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        log.info("started %s", self.name, extra={"fields": {"pid": self.popen.pid}})

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_port(self, host: str, port: int, timeout_s: float = 60.0) -> None:
        try:
            wait_for_port(host, port, timeout_s=timeout_s, alive=self.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(
                f"{self.name} did not start: {exc}; log tail:\n{self.tail()}"
            ) from exc

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 5.0) -> None:
        if self.popen is None:
            return
        proc, self.popen = self.popen, None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Children that outlived their parent in the same group (e.g. a JVM's helpers).
        _signal_group(proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole group at once (fault injection)."""
        if self.popen is not None:
            _signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
            self.popen = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ProcessGroup:
    """Everything the stack started, stopped in reverse order."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def add(self, proc: ManagedProcess) -> ManagedProcess:
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            try:
                proc.stop()
            except Exception:  # keep stopping the others whatever happens
                log.exception("failed to stop %s", proc.name)
        self.processes.clear()


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")
