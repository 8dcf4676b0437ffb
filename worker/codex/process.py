"""Run `codex exec --json` once: stream its events, bound its time, leave no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema

from worker.codex import procs
from worker.codex.env import RUN_MARKER_VAR
from worker.codex.events import HEARTBEAT_TYPE, invalid_line

logger = logging.getLogger(__name__)

RunStatus = Literal["succeeded", "failed", "timed_out", "cancelled"]
OnEvent = Callable[[dict[str, Any]], Awaitable[None] | None]

# Features disabled on the command line as well as in config.toml: this one makes codex retry
# an unreachable model server forever, ignoring every retry setting.
ALWAYS_DISABLED_FEATURES = ("unbounded_connection_retries",)
_READ_CHUNK = 64 * 1024
# Once codex has exited, pipes still open belong to leftovers; do not wait on them for long.
_DRAIN_TIMEOUT_S = 2.0
_LAST_MESSAGE_FILE = "last-message.txt"
_SCHEMA_FILE = "output-schema.json"


@dataclass(frozen=True)
class CodexRunSpec:
    """One invocation of codex. ``env`` must come from env.build_codex_env (holds CODEX_HOME)."""

    binary: Path
    workdir: Path
    prompt: str
    env: Mapping[str, str] = field(repr=False)
    timeout_s: float = 900.0
    # Between SIGTERM and SIGKILL of the process tree (also bounds cancellation latency).
    kill_grace_s: float = 1.5
    output_schema: Mapping[str, Any] | None = None
    resume_thread_id: str | None = None
    # Where the -o file and the schema file go; a temporary directory when None. Never the
    # workdir: files there would show up in the job's diff.
    scratch_dir: Path | None = None
    extra_args: tuple[str, ...] = ()
    heartbeat_interval_s: float | None = None
    stderr_tail_lines: int = 50
    max_line_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.kill_grace_s < 0:
            raise ValueError("timeout_s must be positive and kill_grace_s non-negative")
        if "CODEX_HOME" not in self.env:
            raise ValueError("env must set CODEX_HOME (use env.build_codex_env)")
        if not self.prompt.strip():
            raise ValueError("prompt must not be empty")


@dataclass(frozen=True)
class CodexOutcome:
    status: RunStatus
    exit_code: int | None
    thread_id: str | None
    final_message: str | None
    usage: dict[str, int] | None
    structured_output: Any
    error: str | None
    duration_s: float
    stderr_tail: tuple[str, ...]
    event_count: int
    # Seconds from spawn to the first JSONL event (start-up cost), None if there was none.
    first_event_s: float | None = None
    # Processes other than codex that the runner had to signal (its tree on timeout/cancel,
    # detached leftovers after a normal exit).
    leftover_pids_killed: int = 0
    # codex's pid, which is also its process group and session id.
    pid: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def build_command(spec: CodexRunSpec, last_message: Path, schema: Path | None) -> list[str]:
    args = [
        str(spec.binary),
        "exec",
        "--json",
        "--strict-config",
        "--skip-git-repo-check",
        "--color",
        "never",
        # `exec resume` has no -C of its own: it must come before the subcommand.
        "-C",
        str(spec.workdir),
        "-o",
        str(last_message),
    ]
    if schema is not None:
        args += ["--output-schema", str(schema)]
    for feature in ALWAYS_DISABLED_FEATURES:
        args += ["--disable", feature]
    args += list(spec.extra_args)
    if spec.resume_thread_id is not None:
        args += ["resume", spec.resume_thread_id]
    # "--" so that a prompt starting with "-" is never parsed as an option.
    args += ["--", spec.prompt]
    return args


def agent_message_text(record: Mapping[str, Any]) -> str | None:
    """The text of a completed agent message record (what codex reports as the final message
    unless its last-message file says otherwise); None for any other record."""
    item = record.get("item")
    if record.get("type") != "item.completed" or not isinstance(item, Mapping):
        return None
    text = item.get("text")
    return text if item.get("type") == "agent_message" and isinstance(text, str) else None


class _RunState:
    def __init__(self, tail_lines: int) -> None:
        self.thread_id: str | None = None
        self.usage: dict[str, int] | None = None
        self.last_agent_message: str | None = None
        self.turn_failed: str | None = None
        self.turn_completed = False
        self.last_error: str | None = None
        self.event_count = 0
        self.pid: int | None = None
        self.first_event_at: float | None = None
        self.stderr: deque[str] = deque(maxlen=tail_lines)

    def observe(self, record: Mapping[str, Any]) -> None:
        kind = record.get("type")
        if kind == "thread.started" and isinstance(record.get("thread_id"), str):
            self.thread_id = record["thread_id"]
        elif kind == "turn.completed":
            self.turn_completed = True
            usage = record.get("usage")
            if isinstance(usage, Mapping):
                self.usage = {k: int(v) for k, v in usage.items() if isinstance(v, int)}
        elif kind == "turn.failed":
            err = record.get("error")
            msg = err.get("message") if isinstance(err, Mapping) else err
            self.turn_failed = str(msg or "turn failed")
        elif kind == "error" and isinstance(record.get("message"), str):
            self.last_error = record["message"]
        elif (text := agent_message_text(record)) is not None:
            self.last_agent_message = text


async def _deliver(on_event: OnEvent, record: dict[str, Any]) -> None:
    try:
        result = on_event(record)
        if inspect.isawaitable(result):
            await result
    except Exception:
        # A broken consumer must not leave codex running unsupervised.
        logger.exception("on_event callback failed for %s", record.get("type"))


async def _lines(stream: asyncio.StreamReader, max_line: int) -> AsyncIterator[bytes]:
    """Newline-split lines; an over-long line is cut at ``max_line`` bytes, never buffered whole."""
    buf = bytearray()
    skipping = False
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            break
        buf += chunk
        while True:
            idx = buf.find(b"\n")
            if idx < 0:
                break
            line = bytes(buf[:idx])
            del buf[: idx + 1]
            if skipping:
                skipping = False
                continue
            yield line
        if len(buf) > max_line:
            yield bytes(buf[:max_line])
            buf.clear()
            skipping = True
    if buf and not skipping:
        yield bytes(buf)


async def _pump_stdout(
    stream: asyncio.StreamReader,
    state: _RunState,
    on_event: OnEvent,
    started: float,
    max_line: int,
) -> None:
    async for raw in _lines(stream, max_line):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # nested too deeply is just another bad line
            parsed = None
        record = parsed if isinstance(parsed, dict) else invalid_line(text)
        if isinstance(parsed, dict):
            if state.first_event_at is None:
                state.first_event_at = time.monotonic() - started
            state.event_count += 1
            state.observe(record)
        await _deliver(on_event, record)


async def _pump_stderr(stream: asyncio.StreamReader, state: _RunState) -> None:
    async for raw in _lines(stream, 64 * 1024):
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            state.stderr.append(line)


async def _heartbeats(interval: float, state: _RunState, on_event: OnEvent, started: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await _deliver(
            on_event,
            {
                "type": HEARTBEAT_TYPE,
                "elapsed_s": round(time.monotonic() - started, 3),
                "event_count": state.event_count,
                "at": time.time(),
            },
        )


async def run_codex(spec: CodexRunSpec, on_event: OnEvent, cancel: asyncio.Event) -> CodexOutcome:
    """Run codex to completion, timeout or cancellation; never raises for codex failures.

    ``on_event`` receives every JSONL record in order (plus `runner.*` synthetic records for
    unparseable lines and heartbeats). If the calling task itself is cancelled, the process
    tree is still taken down before CancelledError propagates.
    """
    if spec.scratch_dir is not None:
        spec.scratch_dir.mkdir(parents=True, exist_ok=True)
        return await _run(spec, on_event, cancel, spec.scratch_dir)
    with tempfile.TemporaryDirectory(prefix="codex-run-") as scratch:
        return await _run(spec, on_event, cancel, Path(scratch))


async def _run(
    spec: CodexRunSpec, on_event: OnEvent, cancel: asyncio.Event, scratch: Path
) -> CodexOutcome:
    last_message = scratch / _LAST_MESSAGE_FILE
    last_message.unlink(missing_ok=True)
    schema_path: Path | None = None
    if spec.output_schema is not None:
        schema_path = scratch / _SCHEMA_FILE
        schema_path.write_text(json.dumps(spec.output_schema), encoding="utf-8")
    marker = uuid.uuid4().hex
    env = {**spec.env, RUN_MARKER_VAR: marker}
    argv = build_command(spec, last_message, schema_path)
    state = _RunState(spec.stderr_tail_lines)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(spec.workdir),
            # Own session and process group, so the whole tree can be signalled at once.
            start_new_session=True,
        )
    except OSError as exc:
        return _outcome(
            "failed", None, state, started, error=f"cannot start codex: {exc}", final=None
        )
    state.pid = proc.pid
    # Everything of this run starts after this (the leftover sweep skips older processes).
    since = procs.start_time(proc.pid)
    logger.info("codex started pid=%s resume=%s", proc.pid, spec.resume_thread_id)
    assert proc.stdout is not None
    assert proc.stderr is not None
    pumps = [
        asyncio.create_task(
            _pump_stdout(proc.stdout, state, on_event, started, spec.max_line_bytes)
        ),
        asyncio.create_task(_pump_stderr(proc.stderr, state)),
    ]
    beat = (
        asyncio.create_task(_heartbeats(spec.heartbeat_interval_s, state, on_event, started))
        if spec.heartbeat_interval_s
        else None
    )
    waiter = asyncio.create_task(proc.wait())
    cancelled = asyncio.create_task(cancel.wait())
    stop_reason: RunStatus | None = None
    killed = 0
    try:
        done, _ = await asyncio.wait(
            {waiter, cancelled}, timeout=spec.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            stop_reason = "cancelled" if cancelled in done else "timed_out"
            logger.info("stopping codex pid=%s: %s", proc.pid, stop_reason)
            killed += await _terminate(proc, waiter, marker, spec.kill_grace_s)
    finally:
        if not waiter.done():
            # Our own task was cancelled: still take the tree down before propagating.
            killed += await asyncio.shield(_terminate(proc, waiter, marker, spec.kill_grace_s))
        cancelled.cancel()
        if beat is not None:
            beat.cancel()
        # Anything still carrying the marker outlived codex (e.g. a detached grandchild).
        killed += await procs.sweep(marker, proc.pid, spec.kill_grace_s, since)
        _, pending = await asyncio.wait(pumps, timeout=_DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pumps, *([beat] if beat else []), return_exceptions=True)
    exit_code = proc.returncode
    final = _read_final(last_message, state)
    if stop_reason is not None:
        what = "timed out" if stop_reason == "timed_out" else "was cancelled"
        limit = f" after {spec.timeout_s:g} s" if stop_reason == "timed_out" else ""
        return _outcome(
            stop_reason,
            exit_code,
            state,
            started,
            error=f"codex run {what}{limit}",
            final=final,
            killed=killed,
        )
    error = _failure(exit_code, state)
    if error is not None:
        return _outcome(
            "failed", exit_code, state, started, error=error, final=final, killed=killed
        )
    structured: Any = None
    if spec.output_schema is not None:
        structured, error = _structured(final, spec.output_schema)
        if error is not None:
            return _outcome(
                "failed", exit_code, state, started, error=error, final=final, killed=killed
            )
    return _outcome(
        "succeeded",
        exit_code,
        state,
        started,
        error=None,
        final=final,
        structured=structured,
        killed=killed,
    )


async def _terminate(
    proc: asyncio.subprocess.Process, waiter: asyncio.Task[int], marker: str, grace: float
) -> int:
    """SIGTERM the whole tree, SIGKILL whatever is left after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    tree = procs.collect(proc.pid, marker)
    procs.signal_tree(proc.pid, tree, signal.SIGTERM)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiter), timeout=grace)
    # The sandbox helpers exit a moment after codex; give them the rest of the grace period.
    survivors = await procs.wait_gone(tree, marker, deadline)
    if not waiter.done() or survivors:
        logger.warning("SIGKILL codex tree pid=%s (%d survivors)", proc.pid, len(survivors))
        procs.signal_tree(proc.pid, survivors, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=5)
    return len(tree)


def _read_final(path: Path, state: _RunState) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    # codex writes the file even when the turn produced no message; fall back to the events.
    return text if text.strip() else state.last_agent_message


def _failure(exit_code: int | None, state: _RunState) -> str | None:
    if state.turn_failed is not None:
        return state.turn_failed
    if exit_code == 0 and state.turn_completed:
        return None
    if exit_code == 0:
        return "codex exited without completing the turn"
    detail = state.last_error or _stderr_error(state.stderr)
    return f"codex exited with status {exit_code}" + (f": {detail}" if detail else "")


def _stderr_error(tail: deque[str]) -> str:
    """The most useful stderr lines: from the last line starting with "Error" (codex prints
    the config location on the following line), else the last line."""
    lines = list(tail)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].lower().startswith("error"):
            return " ".join(line.strip() for line in lines[index : index + 2])
    return lines[-1] if lines else ""


def _structured(final: str | None, schema: Mapping[str, Any]) -> tuple[Any, str | None]:
    if final is None:
        return None, "no final message to parse as structured output"
    try:
        value = json.loads(final)
    except ValueError as exc:
        return None, f"final message is not JSON: {exc}"
    except RecursionError:
        return None, "final message is JSON nested too deeply"
    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        errors = sorted(validator_cls(schema).iter_errors(value), key=lambda e: list(e.path))
    except RecursionError:
        return None, "final message is nested too deeply to check against the output schema"
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "<root>"
        return value, f"final message does not match the output schema at {where}: {first.message}"
    return value, None


def _outcome(
    status: RunStatus,
    exit_code: int | None,
    state: _RunState,
    started: float,
    *,
    error: str | None,
    final: str | None,
    structured: Any = None,
    killed: int = 0,
) -> CodexOutcome:
    return CodexOutcome(
        status=status,
        exit_code=exit_code,
        thread_id=state.thread_id,
        final_message=final,
        usage=state.usage,
        structured_output=structured,
        error=error,
        duration_s=round(time.monotonic() - started, 3),
        stderr_tail=tuple(state.stderr),
        event_count=state.event_count,
        first_event_s=None if state.first_event_at is None else round(state.first_event_at, 3),
        leftover_pids_killed=killed,
        pid=state.pid,
    )


def process_group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
