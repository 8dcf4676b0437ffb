"""The benchmark's CPU accounting: what a process tree spent, children included."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.common import CpuMeter

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_a_child_that_started_and_ended_inside_the_block_is_counted() -> None:
    with CpuMeter({"me": os.getpid()}) as meter:
        subprocess.run([sys.executable, "-c", BURN.format(s=0.3)], check=True)

    assert meter.spent["children"] >= 0.25  # this process's reaped children
    assert meter.spent["me"] >= 0.25  # the named tree, its reaped child included
    assert meter.spent["self"] < 0.2  # waiting for the child costs this process little


def test_a_running_grandchild_is_counted_under_its_ancestor() -> None:
    # "; :" keeps the shell as the parent instead of letting it exec python directly.
    script = f"{sys.executable} -c '{BURN.format(s=0.8)}'; :"
    with subprocess.Popen(["sh", "-c", script]) as shell:
        time.sleep(0.1)
        with CpuMeter({"shell": shell.pid}) as meter:
            time.sleep(0.4)
        shell.wait(timeout=30)

    assert meter.spent["shell"] >= 0.1  # the grandchild's CPU, read while it ran
    assert meter.spent["children"] == 0  # nothing of this process ended inside the block
