"""Benchmark: API submission throughput and streaming latency on the local stack.

    .venv/bin/python bench/api_submit.py [results.json] [--seconds S] [--concurrency C]

Starts its own local stack (emulators + API only: no dispatcher or workers, so the numbers are
the API's own) and measures, in order:
1. the raw Firestore-emulator write rate (single-document sets, sequential and N threads) — the
   ceiling every submission path shares;
2. async submissions (`POST /v2/exec`) from a separate process over loopback: closed loop at
   the maximum rate, then open loop at half that rate; requests/s and p50/p99 latency;
3. progress latency: an event appended with JobStore → received by an SSE client; p50/p99.
Prints a table with ratios and writes the results as JSON. Runs in well under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# ---- load generator (runs in a separate process) ----------------------------------------------


async def _load(
    url: str, key: str, seconds: float, concurrency: int, rate: float | None
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    interval = (1.0 / rate) if rate else 0.0
    next_slot = time.perf_counter()
    lock = asyncio.Lock()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-KEY": key}, timeout=30, limits=limits
    ) as client:

        async def worker(n: int) -> None:
            nonlocal next_slot
            i = 0
            while True:
                if rate:
                    async with lock:
                        slot = next_slot
                        next_slot += interval
                    delay = slot - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                r = await client.post(
                    "/v2/exec", json={"prompt": f"bench {n}-{i}", "mode": "async"}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    ok = statuses.get("202", 0)
    return {
        "requests": len(latencies),
        "accepted": ok,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "rps": round(ok / elapsed, 1),
        "p50_ms": round(_pct(latencies, 50), 2),
        "p99_ms": round(_pct(latencies, 99), 2),
    }


def _run_load(
    url: str, key: str, seconds: float, concurrency: int, rate: float | None
) -> dict[str, Any]:
    argv = [
        sys.executable,
        __file__,
        "--load",
        url,
        key,
        str(seconds),
        str(concurrency),
        str(rate or 0),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---- measurements in this process ------------------------------------------------------------


def _firestore_rate(client: Any, seconds: float, threads: int) -> dict[str, Any]:
    collection = client.collection(f"bench-{uuid.uuid4().hex[:6]}")
    deadline = time.perf_counter() + seconds
    counts = [0] * threads

    def writer(n: int) -> None:
        while time.perf_counter() < deadline:
            collection.document(f"{n}-{counts[n]}").set({"n": n, "i": counts[n], "at": time.time()})
            counts[n] += 1

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer, range(threads)))
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "writes": sum(counts),
        "writes_per_s": round(sum(counts) / elapsed, 1),
    }


def _progress_latency(url: str, key: str, store: Any, events: int) -> dict[str, Any]:
    import httpx

    from shared.models import EventDraft, MessageType

    with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=30) as c:
        job_id = c.post("/v2/exec", json={"prompt": "progress bench"}).json()["job_id"]
        sent: dict[int, float] = {}
        received: dict[int, float] = {}
        ready = threading.Event()

        def reader() -> None:
            with c.stream("GET", f"/v2/jobs/{job_id}/events", headers={"Last-Event-ID": "0"}) as r:
                ready.set()
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        received[int(line[4:])] = time.perf_counter()
                        if len(received) >= events:
                            return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        ready.wait(10)
        time.sleep(0.5)  # let the listener attach
        for _ in range(events):
            before = time.perf_counter()
            (event,) = store.append_events(
                job_id, [EventDraft(message_type=MessageType.PROGRESS, data={"bench": True})]
            )
            # Latency counts from the moment the append is acknowledged by Firestore.
            sent[event.seq] = before
            time.sleep(0.02)
        thread.join(timeout=15)
    lat = [(received[s] - sent[s]) * 1000 for s in sent if s in received]
    return {
        "events": events,
        "received": len(lat),
        "p50_ms": round(_pct(lat, 50), 2),
        "p99_ms": round(_pct(lat, 99), 2),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("output", nargs="?", default="bench-api-submit.json")
    parser.add_argument("--seconds", type=float, default=10.0, help="per load phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--firestore-threads", type=int, default=8)
    parser.add_argument("--progress-events", type=int, default=100)
    args = parser.parse_args()

    from devstack.stack import Stack, StackOptions
    from shared.adapters import Adapters
    from shared.apikeys import create_key
    from shared.settings import Settings

    t0 = time.perf_counter()
    options = StackOptions(
        state_dir=Path(tempfile.mkdtemp(prefix="bench-api-")),
        functions=(),
        workers=0,
        model_server=False,
        sweep_interval_s=0,
        extra_env={
            "CODEX_CLOUD_MAX_ACTIVE_JOBS_PER_TENANT": "100000000",
            "CODEX_CLOUD_LOG_LEVEL": "WARNING",
        },
    )
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    with Stack(options) as stack:
        os.environ.update(stack.env)
        settings = Settings()
        adapters = Adapters(settings)
        url = stack.urls["api"]

        def new_key() -> str:
            return create_key(
                adapters.firestore,
                settings,
                tenant=f"bench-{uuid.uuid4().hex[:6]}",
                name="bench",
                tier="PREMIUM",
                rate_limit_per_minute=100_000_000,
            ).key

        results["firestore_sequential"] = _firestore_rate(adapters.firestore, 4, 1)
        results["firestore_threads"] = _firestore_rate(
            adapters.firestore, 4, args.firestore_threads
        )

        stack.reset_state()
        key = new_key()
        _run_load(url, key, 2, args.concurrency, None)  # warm-up (connections, caches)
        stack.reset_state()
        key = new_key()
        results["submit_max"] = _run_load(url, key, args.seconds, args.concurrency, None)
        stack.reset_state()
        key = new_key()
        half = results["submit_max"]["rps"] / 2
        results["submit_half"] = _run_load(url, key, args.seconds, args.concurrency, half)
        results["submit_half"]["target_rps"] = round(half, 1)

        stack.reset_state()
        results["progress_latency"] = _progress_latency(
            url, new_key(), adapters.jobs, args.progress_events
        )
    results["runtime_s"] = round(time.perf_counter() - t0, 1)

    fs_seq = results["firestore_sequential"]["writes_per_s"]
    fs_par = results["firestore_threads"]["writes_per_s"]
    sub_max = results["submit_max"]
    sub_half = results["submit_half"]
    results["ratios"] = {
        "submit_rps_per_firestore_sequential_write": round(sub_max["rps"] / fs_seq, 3),
        "submit_rps_per_firestore_threaded_write": round(sub_max["rps"] / fs_par, 3),
        "p99_half_over_p99_max": round(sub_half["p99_ms"] / sub_max["p99_ms"], 3),
    }
    rows = [
        ("firestore set, 1 thread", f"{fs_seq:.0f} writes/s", ""),
        (f"firestore set, {args.firestore_threads} threads", f"{fs_par:.0f} writes/s", ""),
        (
            f"POST /v2/exec async, max ({args.concurrency} conns)",
            f"{sub_max['rps']:.0f} req/s",
            f"p50 {sub_max['p50_ms']:.1f} ms  p99 {sub_max['p99_ms']:.1f} ms",
        ),
        (
            f"POST /v2/exec async, half ({sub_half['target_rps']:.0f}/s)",
            f"{sub_half['rps']:.0f} req/s",
            f"p50 {sub_half['p50_ms']:.1f} ms  p99 {sub_half['p99_ms']:.1f} ms",
        ),
        (
            "event append -> SSE client",
            f"{results['progress_latency']['received']} events",
            f"p50 {results['progress_latency']['p50_ms']:.1f} ms  "
            f"p99 {results['progress_latency']['p99_ms']:.1f} ms",
        ),
    ]
    out = sys.stdout
    out.write(f"\n{'measurement':<44} {'rate':>16}  latency\n" + "-" * 90 + "\n")
    for name, rate, latency in rows:
        out.write(f"{name:<44} {rate:>16}  {latency}\n")
    out.write(
        "\nratios: " + json.dumps(results["ratios"]) + f"\nruntime: {results['runtime_s']} s\n"
    )
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    out.write(f"results: {args.output}\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        _, _, url, key, seconds, concurrency, rate = sys.argv
        summary = asyncio.run(
            _load(url, key, float(seconds), int(concurrency), float(rate) or None)
        )
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        main()
