"""End-to-end latency and throughput per channel, minus the raw codex run time.

Starts the local stack (emulators, functions, 2 workers, scripted model), then for each channel
(HTTP async through `POST /v2/exec`, Pub/Sub, upload, long job via Workflows) submits
trivial `[[script:hello]]` jobs one at a time and measures submit → terminal status. Between
them (one raw run per round of channels) it runs `codex exec` directly (same binary, same
scripted model) for the raw run time; overhead = channel latency p50 - raw p50. Throughput:
N jobs submitted at once through Pub/Sub vs N raw codex runs in parallel.

    .venv/bin/python -m bench.channels --samples 20 --throughput 8
Writes a JSON report to --out and logs each figure as a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import CpuMeter, raw_codex_runs, seeded_template
from devstack.stack import Stack, StackOptions
from shared.adapters import Adapters
from shared.log import configure_logging
from shared.models import Channel, JobRequest
from shared.settings import Settings

log = logging.getLogger("bench.channels")
PROMPT = "[[script:hello]] write hello.py"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def wait_terminal(adapters: Adapters, job_id: str, timeout_s: float = 120) -> float:
    """Wait until the job is terminal (it may not exist yet); returns the monotonic time its
    terminal snapshot arrived. A document listener, not polling: this process shares the
    cores with the pipeline it measures."""
    finished: dict[str, Any] = {}
    done = threading.Event()

    def on_snapshot(docs: list[Any], _changes: Any, _read_time: Any) -> None:
        for doc in docs:
            status = doc.get("status") if doc.exists else None
            if status in TERMINAL and not done.is_set():
                finished.update(at=time.monotonic(), status=status, error=doc.get("error"))
                done.set()

    ref = adapters.firestore.collection(
        adapters.settings.topology.firestore.jobs_collection
    ).document(job_id)
    watch: Any = ref.on_snapshot(on_snapshot)
    try:
        if not done.wait(timeout_s):
            raise TimeoutError(f"job {job_id} did not finish")
    finally:
        watch.unsubscribe()
    if finished["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {finished['status']}: {finished['error']}")
    return float(finished["at"])


def submit_pubsub(adapters: Adapters) -> float:
    key = f"bench-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    adapters.publisher.publish_json("jobs", {"prompt": PROMPT}, {"idempotency_key": key})
    from shared.jobstore import job_id_for_key

    job_id = job_id_for_key("default", key)
    return wait_terminal(adapters, job_id) - t0


def submit_upload(adapters: Adapters) -> float:
    name = f"bench/{uuid.uuid4().hex}.json"
    bucket = adapters.storage.bucket_name("uploads")
    t0 = time.monotonic()
    info = adapters.storage.put(bucket, name, json.dumps({"prompt": PROMPT}).encode())
    from shared.jobstore import job_id_for_key

    job_id = job_id_for_key("default", f"gcs:{bucket}/{name}#{info.generation}")
    return wait_terminal(adapters, job_id) - t0


def submit_workflow(adapters: Adapters) -> float:
    t0 = time.monotonic()
    job = adapters.jobs.create_job(
        JobRequest(prompt=PROMPT, long_running=True), tenant="bench", channel=Channel.HTTP
    ).job
    return wait_terminal(adapters, job.job_id) - t0


def http_submitter(
    stack: Stack, adapters: Adapters, client: httpx.Client
) -> Callable[[Adapters], float] | None:
    """HTTP async through the API (`POST /v2/exec`, mode async) with a key of its own.

    `client` is kept alive across submissions, as a real caller's is: a client per request
    would add its own TLS-context set-up (tens of ms of CPU) to every figure."""
    if "api" not in stack.urls:
        return None
    from shared.apikeys import create_key

    key = create_key(
        adapters.firestore,
        adapters.settings,
        tenant="bench",
        name="bench",
        tier="PREMIUM",
        rate_limit_per_minute=1_000_000,
    ).key
    url = f"{stack.urls['api']}/v2/exec"
    headers = {"X-API-KEY": key}

    def submit(ad: Adapters) -> float:
        t0 = time.monotonic()
        resp = client.post(url, json={"prompt": PROMPT, "mode": "async"}, headers=headers)
        resp.raise_for_status()
        job_id = str(resp.json()["job_id"])
        return wait_terminal(ad, job_id) - t0

    return submit


def summarize(samples: list[float], raw_p50: float, seeded_p50: float) -> dict[str, float]:
    overhead = [s - raw_p50 for s in samples]
    return {
        "n": len(samples),
        "latency_p50_ms": round(percentile(samples, 0.5) * 1000, 1),
        "latency_p99_ms": round(percentile(samples, 0.99) * 1000, 1),
        "overhead_p50_ms": round(percentile(overhead, 0.5) * 1000, 1),
        "overhead_p99_ms": round(percentile(overhead, 0.99) * 1000, 1),
        # Over codex on a seeded home, as the worker runs it: the orchestration alone.
        "overhead_vs_seeded_p50_ms": round((percentile(samples, 0.5) - seeded_p50) * 1000, 1),
    }


def throughput(adapters: Adapters, n: int, timeout_s: float = 300) -> float:
    """Publish n jobs at once; jobs/s until the last one is terminal.

    Completion is observed with a document listener per job (their ids follow from the
    idempotency keys), as `wait_terminal` does, not with one query listener over the jobs: the
    emulator re-runs a listening query against the whole collection on every job write, which
    would charge the pipeline for the benchmark's own observer, while a document listener
    costs it nothing on writes to other documents (measured)."""
    from shared.jobstore import job_id_for_key

    keys = [f"tp-{uuid.uuid4().hex}" for _ in range(n)]
    wanted = {job_id_for_key("default", key) for key in keys}
    done: dict[str, str] = {}
    lock = threading.Lock()
    all_done = threading.Event()

    def on_snapshot(docs: list[Any], _changes: Any, _read_time: Any) -> None:
        for doc in docs:
            status = doc.get("status") if doc.exists else None
            if status in TERMINAL:
                with lock:
                    done.setdefault(doc.id, str(status))
                    if len(done) == len(wanted):
                        all_done.set()

    jobs = adapters.firestore.collection(adapters.settings.topology.firestore.jobs_collection)
    watches: list[Any] = []
    try:
        watches.extend(jobs.document(job_id).on_snapshot(on_snapshot) for job_id in wanted)
        t0 = time.monotonic()
        for key in keys:
            adapters.publisher.publish_json("jobs", {"prompt": PROMPT}, {"idempotency_key": key})
        if not all_done.wait(timeout_s):
            raise TimeoutError(f"{len(wanted) - len(done)} of {n} jobs did not finish")
        elapsed = time.monotonic() - t0
    finally:
        for watch in watches:
            with contextlib.suppress(Exception):  # every one is closed, whatever happened
                watch.unsubscribe()
    failed = {j: s for j, s in done.items() if s != "succeeded"}
    if failed:
        raise RuntimeError(f"jobs did not succeed: {failed}")
    return n / elapsed


def start_stack(workers: int = 2, slots: int = 4) -> Stack:
    # The sweeper on its deployed schedule (terraform: every minute) and the deployed lease
    # and heartbeat (the settings' defaults). The local stack's seconds-long ones are for quick
    # recovery in tests: each sweep is a few queries the emulator answers by scanning the jobs
    # collection, and each heartbeat rewrites the job (a trigger delivery, a function call).
    defaults = Settings.model_fields
    production = {
        "CODEX_CLOUD_HEARTBEAT_SECONDS": str(defaults["heartbeat_seconds"].default),
        "CODEX_CLOUD_LEASE_SECONDS": str(defaults["lease_seconds"].default),
    }
    options = StackOptions(
        workers=workers, worker_slots=slots, sweep_interval_s=60.0, extra_env=production
    )
    return Stack(options).start()


def measure_channels(stack: Stack, adapters: Adapters, samples: int) -> dict[str, Any]:
    """Per channel: submit → terminal, one job at a time, and its overhead over the p50 of raw
    codex runs interleaved with the channel samples."""
    report: dict[str, Any] = {"samples": samples}
    model = stack.urls["model"] + "/v1"
    channels: dict[str, Callable[[Adapters], float]] = {}
    raw: list[float] = []
    seeded: list[float] = []
    measured: dict[str, list[float]] = {}
    with httpx.Client(timeout=30) as client, seeded_template(model) as template:
        http = http_submitter(stack, adapters, client)
        if http is not None:
            channels["http_async"] = http
        channels["pubsub"] = submit_pubsub
        channels["upload"] = submit_upload
        if "workflows" in stack.processes:
            channels["workflow"] = submit_workflow
        for submit in channels.values():
            submit(adapters)  # warm-up (first import/connection in each function process)
        # Rounds of one raw codex run then one job per channel: drift in the machine's speed
        # (codex's own run time moves by hundreds of ms on a shared box) hits every series
        # alike instead of whichever was measured during a slow spell.
        for _ in range(samples):
            raw.extend(asyncio.run(raw_codex_runs(model, 1, 1, prompt=PROMPT)))
            seeded.extend(asyncio.run(raw_codex_runs(model, 1, 1, template, prompt=PROMPT)))
            for name, submit in channels.items():
                measured.setdefault(name, []).append(submit(adapters))
    raw_p50, seeded_p50 = percentile(raw, 0.5), percentile(seeded, 0.5)
    for key, runs in (("raw_codex", raw), ("raw_codex_seeded", seeded)):
        report[key] = {
            "n": len(runs),
            "p50_ms": round(percentile(runs, 0.5) * 1000, 1),
            "p99_ms": round(percentile(runs, 0.99) * 1000, 1),
        }
    for name, samples_s in measured.items():
        report[name] = summarize(samples_s, raw_p50, seeded_p50)
        log.info("channel measured", extra={"fields": {"channel": name, **report[name]}})
    return report


def _cpu_group(name: str) -> str:
    if name == "worker-pool":
        return "emulators"  # the load balancer's stand-in, managed in production
    if name.startswith("worker"):
        return "worker"
    if name.startswith("fn-") or name == "api":
        return "functions"
    if name == "model":
        return "model"
    return "emulators"


def _cpu_ms_per_job(meters: list[CpuMeter], jobs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per job over all `meters`, by group — codex (the workers' descendants), the worker
    processes, functions and API, the scripted model, emulators and local stand-ins, this
    process — and by stack process (with its descendants)."""
    names = list(meters[0].pids)
    own = {name: sum(m.own[name] for m in meters) for name in names}
    spent = {name: sum(m.spent[name] for m in meters) for name in names}
    groups: dict[str, float] = {"codex": 0.0}
    for name in names:
        group = _cpu_group(name)
        groups[group] = groups.get(group, 0.0) + own[name]
        groups["codex" if group == "worker" else group] += spent[name] - own[name]
    groups["bench"] = sum(m.spent["self"] for m in meters)

    def per_job(values: dict[str, float]) -> dict[str, float]:
        return {k: round(v * 1000 / jobs, 1) for k, v in values.items()}

    return per_job(groups), per_job(spent)


def measure_throughput(stack: Stack, adapters: Adapters, n: int, rounds: int = 1) -> dict[str, Any]:
    """N jobs submitted at once through Pub/Sub vs N raw codex runs all in parallel, with the
    CPU each side spent per job, by process group (on a small machine the emulators share
    the cores with codex). A third side runs raw codex on seeded homes, as the worker does:
    the pipeline against it is the orchestration's own cost.

    `rounds` bursts per side, rotating which side goes first: the machine's speed drifts
    (raw codex run times move by a fifth within minutes on a shared box), and a short burst is
    mostly latency, so one set of bursts is a noisy sample. Jobs/s per side is all its jobs
    over all its burst time."""
    pids = {name: p.pid for name, p in stack.processes.items() if p.pid is not None}
    model = stack.urls["model"] + "/v1"
    meters: dict[str, list[CpuMeter]] = {"pipeline": [], "raw": [], "raw_seeded": []}
    seconds = dict.fromkeys(meters, 0.0)

    def burst(side: str, template: Path) -> None:
        with CpuMeter(pids) as meter:
            if side == "pipeline":  # from the first publish (not the listeners' set-up) on
                seconds[side] += n / throughput(adapters, n)
            else:
                t0 = time.monotonic()
                seed = template if side == "raw_seeded" else None
                asyncio.run(raw_codex_runs(model, n, n, seed, prompt=PROMPT))
                seconds[side] += time.monotonic() - t0
        meters[side].append(meter)

    sides = list(meters)
    with seeded_template(model) as template:
        for r in range(rounds):
            for side in sides[r % 3 :] + sides[: r % 3]:
                burst(side, template)
    jobs = n * rounds
    rate = {side: jobs / spent for side, spent in seconds.items()}
    pipe_cpu, pipe_by_process = _cpu_ms_per_job(meters["pipeline"], jobs)

    def raw_cpu(side: str) -> dict[str, float]:
        # Raw codex runs are this process's children; the model server answers every side.
        runs = meters[side]
        return {
            "codex": round(sum(m.spent["children"] for m in runs) * 1000 / jobs, 1),
            "model": round(sum(m.spent.get("model", 0.0) for m in runs) * 1000 / jobs, 1),
            "bench": round(sum(m.spent["self"] for m in runs) * 1000 / jobs, 1),
        }

    return {
        "pipeline_pubsub": round(rate["pipeline"], 3),
        "raw_codex_parallel": round(rate["raw"], 3),
        "raw_codex_seeded_parallel": round(rate["raw_seeded"], 3),
        "ratio": round(rate["pipeline"] / rate["raw"], 3),
        "ratio_to_seeded": round(rate["pipeline"] / rate["raw_seeded"], 3),
        "n": n,
        "rounds": rounds,
        "worker_slots_total": stack.options.workers * stack.options.worker_slots,
        "pipeline_cpu_ms_per_job": pipe_cpu,
        "pipeline_cpu_ms_per_job_by_process": pipe_by_process,
        "raw_cpu_ms_per_job": raw_cpu("raw"),
        "raw_seeded_cpu_ms_per_job": raw_cpu("raw_seeded"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--throughput", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-channels.json"))
    args = parser.parse_args()
    configure_logging("INFO")
    with start_stack(args.workers, args.slots) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        report = measure_channels(stack, adapters, args.samples)
        report["throughput_jobs_per_s"] = measure_throughput(stack, adapters, args.throughput)
    args.out.write_text(json.dumps(report, indent=2))
    log.info("benchmark finished", extra={"fields": {"report": report, "out": str(args.out)}})


if __name__ == "__main__":
    main()
