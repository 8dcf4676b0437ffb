"""Benchmark: API submission throughput and streaming latency on the local stack.

    .venv/bin/python bench/api_submit.py [results.json] [--seconds S] [--concurrency C]

Starts its own local stack (emulators + API only: no dispatcher or workers, so the numbers are
the API's own; the API with `--api-workers` server processes, default 1) and measures, in
order:
1. progress latency: an event appended with JobStore → received by an SSE client and by a
   WebSocket client; p50/p99 (first, while the emulator has served few writes);
2. the raw Firestore-emulator write rate (single-document sets, sequential and N threads) — the
   ceiling every submission path shares;
3. async submissions (`POST /v2/exec`) from a separate process over loopback: closed loop at
   the maximum rate, then open loop at half that rate; requests/s and p50/p99 latency, after
   one untimed request per connection (its worst latency is reported as `warmup_max_ms`).
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
from typing import Any, Literal

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
    from bench.rawhttp import Connection

    latencies: list[float] = []
    # (seconds into the run, latency ms): shows whether the slowest requests cluster.
    timeline: list[tuple[float, float]] = []
    statuses: dict[str, int] = {}
    interval = (1.0 / rate) if rate else 0.0
    lock = asyncio.Lock()
    conns = [Connection(url, {"X-API-KEY": key}) for _ in range(concurrency)]

    def body(text: str) -> bytes:
        return json.dumps({"prompt": text, "mode": "async"}).encode()

    try:
        # Warm-up, not timed: open every connection and let the API meet the new key and
        # tenant once. The figures are steady-state; the cold start is reported on its own.
        async def warm(n: int) -> float:
            started = time.perf_counter()
            await conns[n].post_json("/v2/exec", body(f"warm-up {n}"))
            return (time.perf_counter() - started) * 1000

        warmup = await asyncio.gather(*(warm(n) for n in range(concurrency)))
        begin = time.perf_counter()
        deadline = begin + seconds
        next_slot = begin

        async def worker(n: int) -> None:
            nonlocal next_slot
            conn = conns[n]
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
                r = await conn.post_json("/v2/exec", body(f"bench {n}-{i}"))
                latencies.append((time.perf_counter() - started) * 1000)
                timeline.append((round(started - begin, 3), round(latencies[-1], 1)))
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    ok = statuses.get("202", 0)
    return {
        "requests": len(latencies),
        "accepted": ok,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "rps": round(ok / elapsed, 1),
        "p50_ms": round(_pct(latencies, 50), 2),
        "p99_ms": round(_pct(latencies, 99), 2),
        "slowest": sorted(timeline, key=lambda t: -t[1])[:12],
        "warmup_max_ms": round(max(warmup), 1),
    }


def run_load(
    url: str, key: str, seconds: float, concurrency: int, rate: float | None
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "bench.api_submit",
        "--load",
        url,
        key,
        str(seconds),
        str(concurrency),
        str(rate or 0),
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 60, cwd=REPO
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---- measurements in this process ------------------------------------------------------------


def firestore_rate(client: Any, seconds: float, threads: int) -> dict[str, Any]:
    """Raw single-document sets against the emulator: the ceiling every submission shares."""
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


Transport = Literal["sse", "ws"]


def _sse_reader(
    url: str, key: str, job_id: str, received: dict[int, float], want: set[int], ready: Any
) -> None:
    import httpx

    headers = {"X-API-KEY": key, "Last-Event-ID": "0"}
    with (
        httpx.Client(base_url=url, timeout=30) as c,
        c.stream("GET", f"/v2/jobs/{job_id}/events", headers=headers) as r,
    ):
        ready.set()
        for line in r.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
                if seq in want:
                    received[seq] = time.perf_counter()
                if want <= received.keys():
                    return


def _ws_reader(ws_url: str, received: dict[int, float], want: set[int], ready: Any) -> None:
    from websockets.sync.client import connect

    with connect(ws_url, open_timeout=10) as ws:
        ready.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not want <= received.keys():
            try:
                frame = ws.recv(timeout=5)
            except TimeoutError:
                continue
            message = json.loads(frame)
            seq = message.get("seq")
            if isinstance(seq, int) and seq in want:
                received[seq] = time.perf_counter()


def progress_latency(
    url: str,
    key: str,
    store: Any,
    events: int,
    *,
    subscribers: int = 1,
    transport: Transport = "sse",
) -> dict[str, Any]:
    """Event appended to Firestore (as the worker does) → received by `subscribers` clients,
    each following its own job over SSE or WebSocket; p50/p99 over every (client, event)."""
    import httpx

    from shared.models import EventDraft, MessageType

    jobs: list[str] = []
    ws_urls: list[str] = []
    with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=30) as c:
        for i in range(subscribers):
            mode = "stream" if transport == "ws" else "async"
            body = c.post("/v2/exec", json={"prompt": f"progress bench {i}", "mode": mode}).json()
            jobs.append(body["job_id"])
            if transport == "ws":
                ws_urls.append(body["websocket_url"])
    # Sequence numbers are per job and start after what job creation wrote; ask the store.
    first = {job_id: store.require_job(job_id).next_seq for job_id in jobs}
    want = {job_id: set(range(first[job_id], first[job_id] + events)) for job_id in jobs}
    received: dict[str, dict[int, float]] = {job_id: {} for job_id in jobs}
    threads = []
    for i, job_id in enumerate(jobs):
        ready = threading.Event()
        if transport == "ws":
            args: tuple[Any, ...] = (ws_urls[i], received[job_id], want[job_id], ready)
            thread = threading.Thread(target=_ws_reader, args=args, daemon=True)
        else:
            args = (url, key, job_id, received[job_id], want[job_id], ready)
            thread = threading.Thread(target=_sse_reader, args=args, daemon=True)
        thread.start()
        ready.wait(10)
        threads.append(thread)
    time.sleep(0.5)  # let the Firestore listeners attach
    sent: dict[str, dict[int, float]] = {job_id: {} for job_id in jobs}
    for _ in range(events):
        for job_id in jobs:
            before = time.perf_counter()
            (event,) = store.append_events(
                job_id, [EventDraft(message_type=MessageType.PROGRESS, data={"bench": True})]
            )
            # Counted from just before the append: includes the Firestore write itself.
            sent[job_id][event.seq] = before
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=20)
    lat = [(received[j][s] - sent[j][s]) * 1000 for j in jobs for s in sent[j] if s in received[j]]
    return {
        "transport": transport,
        "subscribers": subscribers,
        "events": events * subscribers,
        "received": len(lat),
        "p50_ms": round(_pct(lat, 50), 2),
        "p99_ms": round(_pct(lat, 99), 2),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


def start_stack(workers: int = 1) -> Any:
    """Emulators and the API (`workers` server processes) only: no dispatcher or codex
    workers, so the figures are the API's own."""
    from devstack.stack import Stack, StackOptions

    options = StackOptions(
        state_dir=Path(tempfile.mkdtemp(prefix="bench-api-")),
        functions=(),
        workers=0,
        model_server=False,
        sweep_interval_s=0,
        extra_env={
            "CODEX_CLOUD_MAX_ACTIVE_JOBS_PER_TENANT": "100000000",
            "CODEX_CLOUD_LOG_LEVEL": "WARNING",
            "CODEX_CLOUD_API_WORKERS": str(workers),
        },
    )
    return Stack(options).start()


def new_key(adapters: Any) -> str:
    """A fresh tenant with a key whose limits are out of the way."""
    from shared.apikeys import create_key

    return str(
        create_key(
            adapters.firestore,
            adapters.settings,
            tenant=f"bench-{uuid.uuid4().hex[:6]}",
            name="bench",
            tier="PREMIUM",
            rate_limit_per_minute=100_000_000,
        ).key
    )


def measure_submit(
    stack: Any, adapters: Any, *, seconds: float, concurrency: int, half_rate: bool = True
) -> dict[str, Any]:
    """Closed loop at `concurrency` connections; optionally then an open loop at half that rate."""
    url = stack.urls["api"]
    stack.reset_state()
    out: dict[str, Any] = {"max": run_load(url, new_key(adapters), seconds, concurrency, None)}
    if half_rate:
        stack.reset_state()
        half = out["max"]["rps"] / 2
        out["half"] = run_load(url, new_key(adapters), seconds, concurrency, half)
        out["half"]["target_rps"] = round(half, 1)
    return out


def measure(
    stack: Any,
    adapters: Any,
    *,
    seconds: float,
    concurrency: int,
    firestore_threads: int,
    progress_events: int,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # Progress first: the emulator's listener path slows down with the writes it has served,
    # and the load phases below write thousands of documents (`make bench` uses fresh stacks).
    progress_latency(stack.urls["api"], new_key(adapters), adapters.jobs, 5)  # warm-up
    stack.reset_state()
    results["progress_latency"] = progress_latency(
        stack.urls["api"], new_key(adapters), adapters.jobs, progress_events
    )
    stack.reset_state()
    results["progress_latency_ws"] = progress_latency(
        stack.urls["api"], new_key(adapters), adapters.jobs, progress_events, transport="ws"
    )
    results["firestore_sequential"] = firestore_rate(adapters.firestore, 4, 1)
    results["firestore_threads"] = firestore_rate(adapters.firestore, 4, firestore_threads)
    stack.reset_state()
    run_load(stack.urls["api"], new_key(adapters), 2, concurrency, None)  # warm-up
    submit = measure_submit(stack, adapters, seconds=seconds, concurrency=concurrency)
    results["submit_max"], results["submit_half"] = submit["max"], submit["half"]
    fs_seq = results["firestore_sequential"]["writes_per_s"]
    fs_par = results["firestore_threads"]["writes_per_s"]
    sub_max, sub_half = results["submit_max"], results["submit_half"]
    results["ratios"] = {
        "submit_rps_per_firestore_sequential_write": round(sub_max["rps"] / fs_seq, 3),
        "submit_rps_per_firestore_threaded_write": round(sub_max["rps"] / fs_par, 3),
        "p99_half_over_p99_max": round(sub_half["p99_ms"] / sub_max["p99_ms"], 3),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("output", nargs="?", default="bench-api-submit.json")
    parser.add_argument("--seconds", type=float, default=10.0, help="per load phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--firestore-threads", type=int, default=8)
    parser.add_argument("--progress-events", type=int, default=100)
    parser.add_argument("--api-workers", type=int, default=1, help="API server processes")
    args = parser.parse_args()

    from shared.adapters import Adapters
    from shared.settings import Settings

    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    results["api_workers"] = args.api_workers
    with start_stack(args.api_workers) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        results.update(
            measure(
                stack,
                adapters,
                seconds=args.seconds,
                concurrency=args.concurrency,
                firestore_threads=args.firestore_threads,
                progress_events=args.progress_events,
            )
        )
    results["runtime_s"] = round(time.perf_counter() - t0, 1)
    fs_seq = results["firestore_sequential"]["writes_per_s"]
    fs_par = results["firestore_threads"]["writes_per_s"]
    sub_max, sub_half = results["submit_max"], results["submit_half"]
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
    ]
    for name, key in (("SSE", "progress_latency"), ("WebSocket", "progress_latency_ws")):
        lat = results[key]
        rows.append(
            (
                f"event append -> {name} client",
                f"{lat['received']} events",
                f"p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms",
            )
        )
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
        import uvloop

        summary = uvloop.run(_load(url, key, float(seconds), int(concurrency), float(rate) or None))
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        main()
