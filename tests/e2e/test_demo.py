"""`make demo` as CI runs it: `python -m codex_cloud.demo` on its own fresh stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    state = tmp_path / "demo-state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_CLOUD_")}
    env["NO_COLOR"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "codex_cloud.demo", "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        cwd=REPO,
    )
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
