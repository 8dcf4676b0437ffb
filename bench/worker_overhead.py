"""Worker overhead: the same scripted task run by raw `codex exec` and by the worker's
synchronous endpoint, interleaved, plus peak memory per concurrent job.

    python -m bench.worker_overhead [--runs 20] [--concurrency 4] [--json out.json]

Raw runs use the same lean config and a fresh CODEX_HOME per run; a second raw series seeds
each home with codex's state databases, as the worker does (worker/codex/statedb.py), so the
worker's figure can be read against plain codex and against codex started the worker's way.
The worker figure is what a caller of `POST /v1/jobs/{id}:run-sync` sees: claim, workspace,
codex, batched events, artifacts, session save and the final guarded write.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    PeakSampler,
    machine_facts,
    raw_codex_runs,
    rss_tree_kb,
    seeded_template,
    summary,
    write_json,
)
from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.log import configure_logging
from shared.models import Channel, JobRequest, JobStatus
from shared.settings import Settings

PROMPT = "[[script:hello]] write hello.py and run it"


def raw_run(model_url: str, template: Path | None = None) -> float:
    return asyncio.run(raw_codex_runs(model_url, 1, 1, template, prompt=PROMPT))[0]


def worker_run(adapters: Adapters, worker_url: str, client: httpx.Client) -> float:
    job = adapters.jobs.create_job(
        JobRequest(prompt=PROMPT), tenant="bench", channel=Channel.HTTP
    ).job
    adapters.jobs.transition(job.job_id, JobStatus.DISPATCHED)
    started = time.perf_counter()
    resp = client.post(f"{worker_url}/v1/jobs/{job.job_id}:run-sync", timeout=120)
    elapsed = time.perf_counter() - started
    if resp.json().get("job", {}).get("status") != "succeeded":
        raise RuntimeError(f"worker run failed: {resp.text[:500]}")
    return elapsed


def memory(stack: Stack, adapters: Adapters, concurrency: int) -> dict[str, Any]:
    proc = stack.processes["worker-0"]
    assert proc.pid is not None
    idle_kb = rss_tree_kb(proc.pid)
    jobs = []
    # Long enough for every codex to start on a small machine, short enough to bound the run.
    hold_ms = max(4_000, 500 * concurrency)
    for i in range(concurrency):
        job = adapters.jobs.create_job(
            JobRequest(prompt=f"[[script:slow]] hold {i}", timeout_ms=hold_ms),
            tenant="bench",
            channel=Channel.HTTP,
        ).job
        adapters.jobs.transition(job.job_id, JobStatus.DISPATCHED)
        jobs.append(job.job_id)
    with PeakSampler(proc.pid) as sampler, httpx.Client() as client:
        for job_id in jobs:
            client.post(f"{stack.urls['worker-0']}/v1/jobs/{job_id}:run", timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            adapters.jobs.require_job(j).status.terminal for j in jobs
        ):
            time.sleep(0.1)
    return {
        "worker_idle_rss_mib": round(idle_kb / 1024, 1),
        "peak_rss_mib": round(sampler.peak_kb / 1024, 1),
        "concurrent_jobs": concurrency,
        "per_job_mib": round((sampler.peak_kb - idle_kb) / 1024 / concurrency, 1),
    }


def start_stack(slots: int) -> Stack:
    """Emulators, the model server and one worker: no functions, so nothing else dispatches."""
    options = StackOptions(
        functions=(), api=False, workers=1, worker_slots=slots, sweep_interval_s=0
    )
    return Stack(options).start()


def measure_overhead(stack: Stack, adapters: Adapters, runs: int) -> dict[str, Any]:
    """Raw codex and worker run-sync, interleaved so drift on a shared machine hits both."""
    model_url = stack.env["CODEX_CLOUD_MODEL_BASE_URL"]
    raw: list[float] = []
    seeded: list[float] = []
    worker: list[float] = []
    with httpx.Client() as client, seeded_template(model_url) as template:
        raw_run(model_url)  # warm-up: page cache, model server
        worker_run(adapters, stack.urls["worker-0"], client)
        for _ in range(runs):
            raw.append(raw_run(model_url))
            seeded.append(raw_run(model_url, template))
            worker.append(worker_run(adapters, stack.urls["worker-0"], client))
    raw_s, seeded_s, worker_s = summary(raw), summary(seeded), summary(worker)
    ratio = worker_s["median"] / raw_s["median"]
    return {
        "raw_codex_s": raw_s,
        "raw_codex_seeded_s": seeded_s,
        "worker_sync_s": worker_s,
        "ratio_median": ratio,
        "ratio_to_seeded_median": worker_s["median"] / seeded_s["median"],
        "target_ratio": 1.10,
        "target_met": ratio <= 1.10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    configure_logging("WARNING")
    with start_stack(max(4, args.concurrency)) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        result = {"machine": machine_facts(), **measure_overhead(stack, adapters, args.runs)}
        mem = result["memory"] = memory(stack, adapters, args.concurrency)
    raw_s, worker_s, ratio = result["raw_codex_s"], result["worker_sync_s"], result["ratio_median"]
    print(f"{'':24}{'median':>10}{'p10':>10}{'p90':>10}{'n':>5}")
    seeded_s = result["raw_codex_seeded_s"]
    rows = (
        ("raw codex exec (s)", raw_s),
        ("raw codex, seeded (s)", seeded_s),
        ("worker run-sync (s)", worker_s),
    )
    for name, s in rows:
        print(f"{name:24}{s['median']:>10.3f}{s['p10']:>10.3f}{s['p90']:>10.3f}{s['n']:>5}")
    print(
        f"ratio worker/raw (median): {ratio:.3f}  target <= 1.10: "
        f"{'met' if ratio <= 1.10 else 'NOT met'}"
    )
    print(
        f"memory: worker idle {mem['worker_idle_rss_mib']} MiB, peak with "
        f"{mem['concurrent_jobs']} concurrent jobs {mem['peak_rss_mib']} MiB, "
        f"≈{mem['per_job_mib']} MiB per concurrent job"
    )
    write_json(args.json, result)


if __name__ == "__main__":
    main()
