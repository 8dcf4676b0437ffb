"""Terminal output for the CLI: live event lines, a spinner on TTYs, exit codes."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

from codex_cloud.errors import (
    ApiError,
    AuthError,
    ClientError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationFailed,
)
from codex_cloud.models import Event
from codex_cloud.render import PLAIN, Style, event_lines

# Exit codes (docs/cli.md). Job outcomes first, then client-side problems.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_TIMED_OUT = 4
EXIT_NOT_FOUND_OR_AUTH = 5
EXIT_UNAVAILABLE = 6
EXIT_PENDING = 7
EXIT_INTERRUPTED = 130

_STATUS_EXIT = {
    "succeeded": EXIT_OK,
    "failed": EXIT_FAILED,
    "cancelled": EXIT_CANCELLED,
    "timed_out": EXIT_TIMED_OUT,
}


def exit_for_status(status: str | None, *, waited: bool = True) -> int:
    """A job's outcome as an exit code; an unfinished job is 0 unless the caller waited."""
    if status in _STATUS_EXIT:
        return _STATUS_EXIT[status]
    return EXIT_PENDING if waited else EXIT_OK


def exit_for_error(error: BaseException) -> int:
    if isinstance(error, ValidationFailed | ConflictError):
        return EXIT_USAGE
    if isinstance(error, AuthError | NotFoundError):
        return EXIT_NOT_FOUND_OR_AUTH
    if isinstance(error, RateLimitedError | UnavailableError | ConnectionFailed):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def hint_for(error: ClientError, api_url: str, url_source: str) -> str | None:
    if isinstance(error, ConnectionFailed):
        where = f"{api_url} (from {url_source})"
        return f"is the local stack running? try `make dev` — or point --api-url elsewhere: {where}"
    if isinstance(error, AuthError) and error.status == 401:
        return (
            "pass an API key with --api-key or CODEX_CLOUD_API_KEY, or create one for the local "
            "stack: `codex-cloud keys create --tenant NAME --save`"
        )
    if isinstance(error, AuthError):
        return "the key lacks the scope this needs (keys have read, write and admin scopes)"
    if isinstance(error, RateLimitedError):
        wait = f" in {error.retry_after_s:.0f}s" if error.retry_after_s is not None else " later"
        return f"rate limited: try again{wait}"
    return None


def describe(error: ClientError) -> str:
    if isinstance(error, ApiError):
        prefix = f"{error.title.lower() or 'error'} ({error.status})"
        return f"{prefix}: {error.message()}"
    return str(error)


def report_error(
    err: TextIO,
    message: str,
    code: int,
    *,
    as_json: bool,
    hint: str | None = None,
    body: dict[str, Any] | None = None,
    usage: str | None = None,
    style: Style = PLAIN,
) -> int:
    """Every CLI error goes through here; returns `code`, the exit code.

    Plain: `error: …` (after the usage text for command-line mistakes) and an optional hint.
    With --json: one object on stderr, `{"error": {"detail": …, …}, "exit_code": N[, "hint": …]}`
    where `error` is the API's problem+json body when there is one.
    """
    if as_json:
        payload: dict[str, Any] = {"error": {"detail": message, **(body or {})}, "exit_code": code}
        if hint:
            payload["hint"] = hint
        err.write(json.dumps(payload, default=str) + "\n")
        err.flush()
        return code
    if usage:
        err.write(usage)
    err.write(f"error: {message}\n")
    if hint:
        err.write(style(f"hint: {hint}", "dim") + "\n")
    err.flush()
    return code


class Live:
    """Prints event lines as they come; on a TTY a spinner line shows elapsed time.

    Both go to stderr: they are progress, and stdout is kept for results (final message, diff,
    JSON) so that `submit --wait > out.txt` captures only those.
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, err: TextIO, style: Style, *, label: str = "") -> None:
        self.err = err
        self.style = style
        self.label = label
        self.status = "submitted"
        self.events = 0
        self._spin = err.isatty()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Live:
        if self._spin:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self._clear()

    def _run(self) -> None:
        for frame in itertools.cycle(self.FRAMES):
            if self._stop.wait(0.1):
                return
            with self._lock:
                elapsed = time.monotonic() - self._started
                line = f"{frame} {self.status} · {elapsed:.1f}s · {self.events} events"
                self.err.write("\r\x1b[2K" + self.style(line, "dim"))
                self.err.flush()

    def _clear(self) -> None:
        if self._spin:
            self.err.write("\r\x1b[2K")
            self.err.flush()

    def line(self, text: str) -> None:
        with self._lock:
            self._clear()
            self.err.write(text + "\n")
            self.err.flush()

    def event(self, event: Event) -> None:
        if event.is_heartbeat:
            return
        self.events += 1
        if "status" in event.data and "event" not in event.data:
            self.status = str(event.data["status"])
        for text in event_lines(event, self.style):
            self.line(f"{self.label}{text}")


def print_json(value: Any, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(value, indent=2, default=str) + "\n")
