"""`make demo` as CI runs it: `python -m codex_cloud.demo` on its own fresh stack."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CHANNELS = ("http sync", "http async", "websocket", "ws follow-up", "pubsub", "upload")


def _processes_mentioning(marker: str) -> list[int]:
    """PIDs whose environment mentions the marker (every stack child has its state dir there)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.timeout(300)
def test_demo_runs_every_channel_and_leaves_nothing_running(tmp_path: Path) -> None:
    """Run with --keep: the stack must stay up after the table, then Ctrl-C stops all of it."""
    state = tmp_path / "demo-state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_CLOUD_")}
    env["NO_COLOR"] = "1"
    # As when a shell starts it in the background: SIGINT ignored on entry (inherited across
    # exec). The demo must still stop on Ctrl-C.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codex_cloud.demo", "--state-dir", str(state), "--keep"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 260
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        kept = "".join(lines)
        console = re.search(r"Console: (http://[^/\s]+)/console/", kept)
        assert console is not None, kept[-4000:]
        # Kept up: the API still answers after the demo's own work is done.
        assert httpx.get(console.group(1) + "/health", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Hung: leave nothing running behind the failure (each stack process is in a
            # session of its own, so killing the demo alone would orphan them).
            for pid in [proc.pid, *_processes_mentioning(str(state))]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.communicate(timeout=10)
            raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + rest, err)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "Traceback" not in out + result.stderr
    table = out[out.index("CHANNEL") :]
    for channel in CHANNELS:
        row = re.search(
            rf"^{re.escape(channel)}\s+([0-9a-f]{{32}})\s+(\S+)\s+(\S+)\s+(\S+)", table, re.M
        )
        assert row is not None, f"{channel} missing from:\n{table}"
        assert row.group(2) == "succeeded"
        assert row.group(4).startswith("gs://codex-results/")
    # Live progress was shown while the jobs ran: commands, file changes, messages.
    assert "[http async  ]" in out
    assert "$ /bin/bash -c 'python3 hello.py'" in out
    assert "+ hello.py" in out
    assert "second turn" in out
    assert "all jobs succeeded" in out
    assert _processes_mentioning(str(state)) == []
