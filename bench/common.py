"""Small helpers shared by the benchmark scripts: statistics, RSS sampling, reporting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from devstack.stack import SCRIPTED_MODEL
from worker.codex.binary import find_codex_binary
from worker.codex.config import CodexConfig, ProviderConfig, prepare_codex_home
from worker.codex.env import build_codex_env
from worker.codex.process import CodexRunSpec, run_codex
from worker.codex.statedb import build_state_template, seed_codex_home


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "stdev": statistics.pstdev(values) if len(values) > 1 else 0.0,
    }


def _version(argv: Sequence[str]) -> str:
    """First line a tool prints about its version ("" when it is not there)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine_facts() -> dict[str, Any]:
    from devstack import preflight

    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    versions = {
        "python": sys.version.split()[0],
        "codex": _version([str(find_codex_binary()), "--version"]),
        "java": _version([preflight.java_bin(), "-version"]),
        "redis": _version([preflight.redis_bin(), "--version"]),
        "node": _version(["node", "--version"]),
    }
    # The Pub/Sub and Firestore emulators are gcloud SDK components; `gcloud version` names them.
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run(
            ["gcloud", "version"], capture_output=True, text=True, check=False, timeout=60
        ).stdout
        for line in out.splitlines():
            name, _, version = line.strip().rpartition(" ")
            if name in ("Google Cloud SDK", "cloud-firestore-emulator", "pubsub-emulator"):
                versions[name.lower().replace(" ", "_")] = version
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_at_start": os.getloadavg(),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and range of one figure over repeated runs."""
    clean = [v for v in values if v == v]  # NaN (a run that measured nothing) is dropped
    if not clean:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {
        "n": len(clean),
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
    }


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _descendants(root_pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo, seen = [], [root_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


_ProcScan = tuple[dict[int, list[int]], dict[int, list[str]], dict[int, str]]


def _scan_proc(with_status: bool) -> _ProcScan:
    """One pass over /proc: children by parent, each process's stat fields after the name
    and (when asked) its status text."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    statuses: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if with_status:
                statuses[int(entry.name)] = (entry / "status").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    return children, stats, statuses


def rss_tree_kb(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB."""
    children, _, statuses = _scan_proc(with_status=True)
    total = 0
    for pid in _descendants(root_pid, children):
        for line in statuses.get(pid, "").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(root_pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Per named process: (its own CPU seconds, CPU seconds of its descendants, live and
    reaped). Differences of two calls give the CPU spent in between, including processes
    that started and ended in the meantime."""
    children, stats, _ = _scan_proc(with_status=False)

    def own(pid: int) -> float:
        f = stats.get(pid)
        return (int(f[11]) + int(f[12])) / _TICKS_PER_S if f else 0.0

    def reaped(pid: int) -> float:
        f = stats.get(pid)
        return (int(f[13]) + int(f[14])) / _TICKS_PER_S if f else 0.0

    out: dict[str, tuple[float, float]] = {}
    for name, root in root_pids.items():
        tree = _descendants(root, children)
        below = sum(own(p) for p in tree[1:]) + sum(reaped(p) for p in tree)
        out[name] = (own(root), below)
    return out


class CpuMeter:
    """CPU seconds spent inside a `with` block: `spent` by each named process with its
    descendants, by this process (`self`) and by its reaped children (`children`); `own` by
    each named process alone."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spent: dict[str, float] = {}
        self.own: dict[str, float] = {}

    def _now(self) -> dict[str, tuple[float, float]]:
        out = dict(cpu_seconds(self.pids))
        me = os.times()
        out["self"] = (me.user + me.system, me.children_user + me.children_system)
        return out

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        for name, (own, below) in end.items():
            own0, below0 = self._start.get(name, (0.0, 0.0))
            self.own[name] = own - own0
            self.spent[name] = own - own0 + below - below0
        self.spent["self"] = self.own["self"]
        self.spent["children"] = end["self"][1] - self._start["self"][1]

    def ms_per(self, n: int, *names: str) -> float:
        return round(sum(self.spent.get(name, 0.0) for name in names) * 1000 / max(n, 1), 2)


class PeakSampler:
    """Samples the RSS of a process tree in a thread and keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid, self.interval_s, self.peak_kb = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_tree_kb(self.pid))
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=str))


def raw_config(model_base_url: str) -> CodexConfig:
    return CodexConfig(provider=ProviderConfig(base_url=model_base_url, model=SCRIPTED_MODEL))


@contextlib.contextmanager
def seeded_template(model_base_url: str) -> Iterator[Path]:
    """codex's state databases made once, as a worker makes them for its jobs' homes."""
    root = Path(tempfile.mkdtemp(prefix="bench-template-"))
    try:
        made = build_state_template(find_codex_binary(), root / "t", raw_config(model_base_url))
        if made is None:
            raise RuntimeError("codex made no state databases to seed homes with")
        yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def raw_codex_runs(
    model_base_url: str, n: int, parallel: int, template: Path | None = None, *, prompt: str
) -> list[float]:
    """`codex exec` directly with the same scripted model: wall time per run. Each run gets a
    fresh CODEX_HOME, as plain codex starts; with `template`, one seeded with codex's state
    databases (what the worker does, worker/codex/statedb.py)."""
    binary = find_codex_binary()
    sem = asyncio.Semaphore(parallel)
    root = Path(tempfile.mkdtemp(prefix="bench-raw-"))

    async def one(i: int) -> float:
        async with sem:
            job_root = root / f"r{i}"
            workdir = job_root / "workspace"
            workdir.mkdir(parents=True)
            home = prepare_codex_home(job_root, raw_config(model_base_url))
            if template is not None:
                seed_codex_home(template, home.codex_home)
            env = build_codex_env(
                home=home.home,
                codex_home=home.codex_home,
                tmp_dir=home.tmp_dir,
                git_ceiling=job_root.resolve(),
            )
            spec = CodexRunSpec(
                binary=binary,
                workdir=workdir,
                prompt=prompt,
                env=env,
                timeout_s=60,
                scratch_dir=job_root / "scratch",
            )
            t0 = time.monotonic()
            outcome = await run_codex(spec, lambda _e: None, asyncio.Event())
            if not outcome.succeeded:
                raise RuntimeError(f"raw codex run failed: {outcome}")
            return time.monotonic() - t0

    try:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        shutil.rmtree(root, ignore_errors=True)
