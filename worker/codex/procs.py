"""Finding and killing every process of one codex run (Linux /proc).

codex starts each agent command through its sandbox helper in a NEW session, so signalling
codex's process group alone misses them; processes can also be re-parented to PID 1 once codex
dies. A run is therefore identified two ways: the process tree under codex, and an environment
marker (env.RUN_MARKER_VAR) every process of the run inherits. PIDs are remembered together
with their start time so a recycled PID is never signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import NamedTuple

from worker.codex.env import RUN_MARKER_VAR

_PROC = "/proc"
_POLL_S = 0.05
# /proc/PID/stat is one short line; environ is read in chunks of this size until it ends.
_READ_CHUNK = 65536


class ProcId(NamedTuple):
    pid: int
    start_time: int


class _Stat(NamedTuple):
    ppid: int
    pgid: int
    state: str
    start_time: int


def _read(path: str) -> bytes | None:
    """A whole /proc file, or None once the process is gone. Plain os calls: every run ends
    with a scan reading each process's stat, and pathlib's per-file overhead tripled it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _stat(pid: int) -> _Stat | None:
    raw = _read(f"{_PROC}/{pid}/stat")
    if raw is None:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = raw.rsplit(b")", 1)[-1].split()
    try:
        return _Stat(
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            state=fields[0].decode(),
            start_time=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir(_PROC) if name.isdigit()]
    except OSError:
        return []


def is_alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st.state not in ("Z", "X")


def _matches(pid_id: ProcId) -> bool:
    st = _stat(pid_id.pid)
    return st is not None and st.start_time == pid_id.start_time and st.state not in ("Z", "X")


def descendants(root: int) -> set[ProcId]:
    children: dict[int, list[int]] = {}
    stats: dict[int, _Stat] = {}
    for pid in _pids():
        st = _stat(pid)
        if st is None:
            continue
        stats[pid] = st
        children.setdefault(st.ppid, []).append(pid)
    found: set[ProcId] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            st = stats[child]
            if st.state in ("Z", "X"):
                continue
            found.add(ProcId(child, st.start_time))
            stack.append(child)
    return found


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), None if it is gone."""
    st = _stat(pid)
    return st.start_time if st is not None else None


def collect_marked(marker: str, since: int | None = None) -> set[ProcId]:
    """Live processes whose environment carries this run's marker. With ``since`` (the run's
    start time), processes that started earlier are skipped without reading their
    environment: they cannot have inherited the marker."""
    return _scan(marker, since, pgid=None)


def _scan(marker: str, since: int | None, pgid: int | None) -> set[ProcId]:
    """One pass over /proc: the marked processes, plus members of group ``pgid``."""
    needle = f"{RUN_MARKER_VAR}={marker}".encode()
    found: set[ProcId] = set()
    own = os.getpid()
    for pid in _pids():
        if pid == own:
            continue
        st = _stat(pid)
        if st is None or st.state in ("Z", "X"):
            continue
        if pgid is not None and st.pgid == pgid:
            found.add(ProcId(pid, st.start_time))
            continue
        if since is not None and st.start_time < since:
            continue
        environ = _read(f"{_PROC}/{pid}/environ")
        if environ is not None and needle in environ.split(b"\0"):
            found.add(ProcId(pid, st.start_time))
    return found


def group_members(pgid: int) -> set[ProcId]:
    found: set[ProcId] = set()
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st.pgid == pgid and st.state not in ("Z", "X"):
            found.add(ProcId(pid, st.start_time))
    return found


def collect(root: int, marker: str) -> set[ProcId]:
    """Everything belonging to the run right now, codex itself excluded."""
    found = descendants(root) | collect_marked(marker) | group_members(root)
    return {p for p in found if p.pid != root}


def alive(ids: set[ProcId]) -> set[ProcId]:
    return {p for p in ids if _matches(p)}


def signal_tree(root: int, ids: set[ProcId], sig: signal.Signals) -> None:
    # codex is its own group leader (start_new_session), so the group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(root, sig)
    for pid_id in ids:
        if _matches(pid_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid_id.pid, sig)


async def wait_gone(
    ids: set[ProcId], marker: str, deadline: float, since: int | None = None
) -> set[ProcId]:
    """Poll /proc until neither ``ids`` nor marked processes live, or ``deadline`` passes.

    Polling because these processes are not our children: nothing signals their exit.
    Returns the survivors.
    """
    while True:
        survivors = alive(ids) | await asyncio.to_thread(collect_marked, marker, since)
        if not survivors or time.monotonic() >= deadline:
            return survivors
        await asyncio.sleep(_POLL_S)


async def sweep(marker: str, root: int, grace: float, since: int | None = None) -> int:
    """Kill leftovers of a finished run (TERM, then KILL after ``grace``); returns their count.

    ``since`` is the run's start time (see `collect_marked`). The /proc scan runs off the event
    loop: on a busy worker it reads hundreds of files, and other jobs' output waits meanwhile."""
    leftovers = await asyncio.to_thread(_scan, marker, since, root)
    if not leftovers:
        return 0
    signal_tree(root, leftovers, signal.SIGTERM)
    survivors = await wait_gone(leftovers, marker, time.monotonic() + grace, since)
    if survivors:
        signal_tree(root, survivors, signal.SIGKILL)
    return len(leftovers)
