"""Load through every channel with faults injected while it runs, and model-side failures.

The load: `RELIABILITY_LOAD_JOBS` (default 1,000) trivial jobs in bursts across HTTP, Pub/Sub
and uploads. While it runs: a worker is SIGKILLed mid-job and restarted, the Firestore emulator
is frozen (SIGSTOP … SIGCONT of its process group) for a few seconds, and Redis is stopped and
restarted. The emulator is frozen rather than restarted because it keeps everything in memory:
a restart would lose every job, which is a test of the emulator, not of us. A frozen process
looks to clients exactly like an unreachable backend (connections hang, then time out).

Afterwards: every accepted job reached exactly one terminal state, the jobs in the store are
exactly the accepted ones, per-channel counts match, no attempt ran codex twice, and the API
answered 202/429/503 — never another 5xx — while a dependency was down.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import Stack
from shared.adapters import Adapters
from tests.reliability.conftest import Scenario
from tests.reliability.support import (
    TRIVIAL,
    Submitted,
    codex_runs,
    job_count,
    new_key,
    submit_http,
    submit_pubsub,
    submit_upload,
    wait_terminal,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1500)]

LOAD_JOBS = int(os.environ.get("RELIABILITY_LOAD_JOBS", "1000"))
BURST = 30  # jobs per channel per burst
ACCEPTABLE_WHILE_DOWN = {202, 429, 503}


@contextlib.contextmanager
def frozen(stack: Stack, name: str) -> Iterator[None]:
    """SIGSTOP the process group of one of the stack's processes; SIGCONT on the way out."""
    pid = stack.processes[name].pid
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


class Faults(threading.Thread):
    """Injects the faults one after another once the load has started; records what it did."""

    def __init__(self, stack: Stack, started: threading.Event) -> None:
        super().__init__(name="faults", daemon=True)
        self.stack, self.started = stack, started
        self.log: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        self.started.wait(60)
        time.sleep(8)  # jobs are running on both workers by now
        worker = self.stack.processes["worker-1"]
        worker.kill()
        self.log.append("SIGKILL worker-1")
        time.sleep(3)
        worker.start()
        worker.wait_port("127.0.0.1", self.stack.ports["worker-1"], timeout_s=60)
        self.log.append("worker-1 restarted")
        time.sleep(5)
        with frozen(self.stack, "firestore"):
            self.log.append("firestore frozen 5 s")
            time.sleep(5)
        time.sleep(5)
        redis = self.stack.processes["redis"]
        redis.stop()
        self.log.append("redis stopped 5 s")
        time.sleep(5)
        redis.start()
        redis.wait_port("127.0.0.1", self.stack.ports["redis"], timeout_s=30)


def test_load_across_channels_with_faults(
    rel_stack: Stack, rel_adapters: Adapters, scenario: Scenario
) -> None:
    scenario.set(
        injected=f"{LOAD_JOBS} jobs HTTP/Pub/Sub/upload; SIGKILL worker; Firestore frozen 5 s; "
        "Redis down 5 s",
        expected="all accepted jobs terminal once, counts match, <=1 codex run per attempt, "
        "API never 5xx except 503",
    )
    stack, adapters = rel_stack, rel_adapters
    key, _ = new_key(adapters)
    submitted = Submitted()
    http_statuses: Counter[int] = Counter()
    status_lock = threading.Lock()
    started = threading.Event()
    faults = Faults(stack, started)
    faults.start()
    shares = {"http": 0.4, "pubsub": 0.4, "upload": 0.2}
    quota = {ch: round(LOAD_JOBS * share) for ch, share in shares.items()}
    deadline = time.monotonic() + 900
    with (
        httpx.Client(base_url=stack.urls["api"], headers={"X-API-KEY": key}, timeout=60) as c,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):

        def http_one(i: int) -> None:
            # A refused submission (503 while Firestore is frozen) is retried, like a client
            # honouring Retry-After would; bounded so a stuck API fails the test.
            for _ in range(20):
                try:
                    resp = submit_http(c, f"{TRIVIAL} load http {i}")
                except httpx.TimeoutException:
                    # No answer within the client's 60 s (seen once while Firestore was
                    # frozen): not a 5xx, but reported in the table; retried like a 503.
                    with status_lock:
                        http_statuses[0] += 1
                    continue
                with status_lock:
                    http_statuses[resp.status_code] += 1
                if resp.status_code == 202:
                    submitted.add("http", resp.json()["job_id"])
                    return
                time.sleep(float(resp.headers.get("Retry-After", "1")))

        def pubsub_one(i: int) -> None:
            submitted.add("pubsub", submit_pubsub(adapters, f"{TRIVIAL} load pubsub {i}"))

        def upload_one(i: int) -> None:
            submitted.add("upload", submit_upload(adapters, f"{TRIVIAL} load upload {i}"))

        sent = dict.fromkeys(quota, 0)
        while any(sent[ch] < quota[ch] for ch in quota) and time.monotonic() < deadline:
            futures = []
            for ch, fn in (("http", http_one), ("pubsub", pubsub_one), ("upload", upload_one)):
                n = min(BURST, quota[ch] - sent[ch])
                futures += [pool.submit(fn, sent[ch] + i) for i in range(n)]
                sent[ch] += n
            for fut in futures:
                fut.result()
            started.set()
            time.sleep(1.0)  # bursts, not a constant stream
    faults.join(timeout=120)
    done, stuck = wait_terminal(adapters, submitted.all, timeout_s=900)
    statuses = Counter(job.status.value for job in done.values())
    per_channel = {
        ch: sum(1 for j in ids if j in done and done[j].channel.value == ch)
        for ch, ids in submitted.by_channel.items()
    }
    runs = {j: codex_runs(adapters, j) for j in done}
    double_runs = {j: dict(r) for j, r in runs.items() if any(n > 1 for n in r.values())}
    total = job_count(stack, adapters)
    bad_http = {s: n for s, n in http_statuses.items() if s >= 500 and s != 503}
    scenario.observe(
        f"faults {faults.log}; {len(done)}/{len(submitted.all)} terminal {dict(statuses)}; "
        f"per channel {per_channel}; in store {total}; double runs {len(double_runs)}; "
        f"stuck {len(stuck)}; HTTP {dict(http_statuses)} (0 = client timeout)"
    )
    assert faults.error is None, faults.error
    assert len(faults.log) == 4, faults.log
    assert stuck == []
    assert per_channel == quota
    assert total == len(submitted.all)
    assert double_runs == {}
    assert bad_http == {}
    assert set(statuses) == {"succeeded"}


def test_model_errors_and_hangs_end_once(
    rel_stack: Stack, rel_adapters: Adapters, scenario: Scenario
) -> None:
    scenario.set(
        injected="model answers 500 (model-500) / never answers (hang) among trivial jobs",
        expected="500 → failed, hang → timed_out, others succeeded; each terminal once",
    )
    stack, adapters = rel_stack, rel_adapters
    key, _ = new_key(adapters)
    plan = {"model-500": 8, "hang": 4, "trivial": 8}
    expected = {"model-500": "failed", "hang": "timed_out", "trivial": "succeeded"}
    jobs: dict[str, str] = {}
    with httpx.Client(base_url=stack.urls["api"], headers={"X-API-KEY": key}, timeout=60) as c:
        for script, n in plan.items():
            for i in range(n):
                resp = c.post(
                    "/v2/exec",
                    json={
                        "prompt": f"[[script:{script}]] fault {i}",
                        # Only the hanging jobs should run out of time.
                        "timeout_ms": 6_000 if script == "hang" else 300_000,
                        "long_running": False,
                        "max_attempts": 1,
                    },
                )
                assert resp.status_code == 202, resp.text
                jobs[resp.json()["job_id"]] = script
    done, stuck = wait_terminal(adapters, jobs, timeout_s=300)
    outcome = Counter((jobs[j], job.status.value) for j, job in done.items())
    wrong = {k: n for k, n in outcome.items() if expected[k[0]] != k[1]}
    runs = {j: codex_runs(adapters, j) for j in done}
    double = {j: dict(r) for j, r in runs.items() if any(n > 1 for n in r.values())}
    scenario.observe(f"{dict(outcome)}; stuck {len(stuck)}; double runs {len(double)}")
    assert stuck == []
    assert wrong == {}
    assert double == {}
