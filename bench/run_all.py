"""Every benchmark on fresh local stacks, repeated, with a report: `make bench`.

    .venv/bin/python -m bench.run_all [--repeats 3] [--quick] [--out-dir bench]

Stacks one after another; the worker and full stacks are reused for all their repeats, the API
and progress stacks are fresh for each repeat:
1. worker stack (emulators, model server, one worker): worker run-sync vs raw `codex exec`;
   worker RSS per concurrent job at 1x, 4x and 16x;
2. API stack (emulators and the API, nothing dispatches): raw Firestore-emulator write rate;
   async submissions at 1, 4 and 16 connections and at half the maximum rate; then, on a stack
   whose API runs one server process per core, the 16-connection run with its own baseline;
3. a fresh API stack per repeat: progress latency to SSE and WebSocket clients with 1, 4 and 16
   subscribers;
4. full stack (functions, 2 workers, Workflows): the stack's memory at rest; submit → terminal
   per channel minus raw codex; pipeline throughput vs the same number of raw codex runs in
   parallel at 1x, 4x and 16x jobs.
Every figure is measured `--repeats` times; the report gives the median and the range over the
repeats and, where there is one, the ratio to the baseline measured in the same repeat.
Writes `results.json` (everything, per repeat) and `results.md` (tables, targets met or not).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api_submit, channels, worker_overhead
from bench.common import CpuMeter, machine_facts, rss_tree_kb, spread
from devstack.stack import Stack
from shared.adapters import Adapters
from shared.log import configure_logging
from shared.settings import Settings

log = logging.getLogger("bench.run_all")
SCALES = (1, 4, 16)
# Bursts per side in each throughput measurement: a burst of 2 jobs lasts about a second (mostly
# latency, and the machine's speed drifts), one of 32 about fifteen.
THROUGHPUT_ROUNDS = {1: 6, 4: 3, 16: 1}
# The submission figures use one API server process (as deployed on a 1-vCPU instance); for
# reference the 16-connection run is repeated with one process per core.
CORES = os.cpu_count() or 1
TRANSPORTS: tuple[api_submit.Transport, ...] = ("sse", "ws")


@dataclass(frozen=True)
class Target:
    figure: str
    op: str  # "<=", "<" or ">="
    bound: float
    text: str

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.op == "<=":
            return value <= self.bound
        if self.op == "<":
            return value < self.bound
        return value >= self.bound


TARGETS = (
    Target("worker.ratio", "<=", 1.10, "worker run-sync / raw codex ≤ 1.10"),
    Target("submit.ratio_to_firestore", ">=", 0.50, "async submit rate ≥ 50 % of raw writes"),
    Target("submit_half.p99_ms", "<", 100, "submit p99 < 100 ms at half the max rate"),
    Target("progress.sse.p50_ms@1x", "<", 50, "event → SSE client p50 < 50 ms"),
    Target("progress.sse.p99_ms@1x", "<", 200, "event → SSE client p99 < 200 ms"),
    Target("progress.ws.p50_ms@1x", "<", 50, "event → WebSocket client p50 < 50 ms"),
    Target("progress.ws.p99_ms@1x", "<", 200, "event → WebSocket client p99 < 200 ms"),
    *(
        Target(f"channel.{c}.overhead_p50_ms", "<=", 300, f"{c}: overhead p50 ≤ 300 ms")
        for c in ("http_async", "pubsub", "upload", "workflow")
    ),
    *(
        Target(f"throughput.ratio@{s}x", ">=", 0.80, f"pipeline ≥ 80 % of raw codex ({s}x)")
        for s in SCALES
    ),
)

# Longest suffixes first: "jobs_per_s" must not be read as seconds.
UNITS = {
    "writes_per_s": "writes/s",
    "jobs_per_s": "jobs/s",
    "_ms_per_job": "ms CPU/job",
    "_ms_per_req": "ms CPU/request",
    "_ms_per_write": "ms CPU/write",
    "rps": "req/s",
    "lost": "events",
    "_mib": "MiB",
    "_ms": "ms",
    "_s": "s",
}


def unit_of(name: str) -> str:
    base = name.split("@", 1)[0]
    for suffix, unit in UNITS.items():
        if base.endswith(suffix):
            return unit
    return "ratio" if "ratio" in base else ""


# ---- the three stacks ------------------------------------------------------------------------


def worker_section(repeats: int, runs: int, details: dict[str, Any]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    with worker_overhead.start_stack(max(SCALES)) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        # Every overhead repeat before any memory run: the memory runs end in timeouts that
        # kill codex trees, and on this machine the worker's later runs were measurably slower
        # after them (see bench notes), which is not the steady-state overhead asked for.
        overheads = []
        for r in range(repeats):
            log.info("worker repeat %d/%d", r + 1, repeats)
            overheads.append(worker_overhead.measure_overhead(stack, adapters, runs))
        for over in overheads:
            fig = {
                "worker.raw_codex_s": over["raw_codex_s"]["median"],
                "worker.raw_codex_seeded_s": over["raw_codex_seeded_s"]["median"],
                "worker.sync_s": over["worker_sync_s"]["median"],
                "worker.ratio": over["ratio_median"],
                "worker.ratio_to_seeded": over["ratio_to_seeded_median"],
            }
            mem: dict[str, Any] = {}
            for scale in SCALES:
                mem[str(scale)] = m = worker_overhead.memory(stack, adapters, scale)
                fig["memory.worker_idle_mib"] = m["worker_idle_rss_mib"]
                fig[f"memory.worker_peak_mib@{scale}x"] = m["peak_rss_mib"]
                fig[f"memory.per_job_mib@{scale}x"] = m["per_job_mib"]
            details.setdefault("worker", []).append({"overhead": over, "memory": mem})
            out.append(fig)
    return out


def api_section(
    repeats: int, seconds: float, events: int, details: dict[str, Any]
) -> list[dict[str, float]]:
    """Submission figures on fresh stacks per repeat (see `submission_repeat`)."""
    out: list[dict[str, float]] = []
    for r in range(repeats):
        log.info("api repeat %d/%d", r + 1, repeats)
        fig = submission_repeat(seconds, events, details)
        fig.update(multi_process_submit(seconds, details))
        out.append(fig)
    return out


def submission_repeat(seconds: float, events: int, details: dict[str, Any]) -> dict[str, float]:
    """Raw write rates, then submissions at every scale and at half the best rate, on a fresh
    stack: the emulator slows down with the writes it has served (clearing its documents does
    not undo it), so one stack for every repeat made each repeat slower than the last."""
    with api_submit.start_stack(1) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        url = stack.urls["api"]
        api_submit.run_load(url, api_submit.new_key(adapters), 2, 4, None)  # warm-up
        pids = {name: p.pid for name, p in stack.processes.items() if p.pid is not None}
        raw: dict[str, Any] = {
            "firestore_sequential": api_submit.firestore_rate(adapters.firestore, 3, 1)
        }
        with CpuMeter(pids) as writes_cpu:
            raw["firestore_threads"] = api_submit.firestore_rate(adapters.firestore, 3, 8)
        fs_max = max(
            raw["firestore_sequential"]["writes_per_s"],
            raw["firestore_threads"]["writes_per_s"],
        )
        fig: dict[str, float] = {
            "firestore.writes_per_s@1thread": raw["firestore_sequential"]["writes_per_s"],
            "firestore.writes_per_s@8threads": raw["firestore_threads"]["writes_per_s"],
        }
        n_writes = int(raw["firestore_threads"]["writes"])
        fig["cpu.firestore_write.emulator_ms_per_write"] = writes_cpu.ms_per(n_writes, "firestore")
        fig["cpu.firestore_write.client_ms_per_write"] = writes_cpu.ms_per(n_writes, "self")
        best = 0.0
        for scale in SCALES:
            stack.reset_state()
            key = api_submit.new_key(adapters)
            with CpuMeter(pids) as submit_cpu:
                sub = api_submit.run_load(url, key, seconds, scale, None)
            n_req = int(sub["requests"])
            fig[f"cpu.submit.api_ms_per_req@{scale}x"] = submit_cpu.ms_per(n_req, "api")
            fig[f"cpu.submit.emulators_ms_per_req@{scale}x"] = submit_cpu.ms_per(
                n_req, "firestore", "redis"
            )
            fig[f"cpu.submit.load_generator_ms_per_req@{scale}x"] = submit_cpu.ms_per(
                n_req, "children"
            )
            raw[f"submit@{scale}x"] = sub
            fig[f"submit.rps@{scale}x"] = sub["rps"]
            fig[f"submit.p50_ms@{scale}x"] = sub["p50_ms"]
            fig[f"submit.p99_ms@{scale}x"] = sub["p99_ms"]
            best = max(best, sub["rps"])
        fig["submit.max_rps"] = best
        fig["submit.ratio_to_firestore"] = best / fs_max
        # Open loop at half the best closed-loop rate, enough connections not to queue.
        stack.reset_state()
        half = api_submit.run_load(
            url, api_submit.new_key(adapters), seconds, max(SCALES), best / 2
        )
        raw["submit_half"] = half
        fig["submit_half.offered_rps"] = best / 2
        fig["submit_half.rps"] = half["rps"]
        fig["submit_half.p50_ms"] = half["p50_ms"]
        fig["submit_half.p99_ms"] = half["p99_ms"]
        fig["submit_half.warmup_max_ms"] = half["warmup_max_ms"]
        # For context only: the same progress measurement on this stack, after the submission
        # phases' thousands of writes (see progress_section).
        stack.reset_state()
        aged = api_submit.progress_latency(
            url, api_submit.new_key(adapters), adapters.jobs, events, transport="sse"
        )
        raw["progress_after_writes.sse@1x"] = aged
        fig["progress_after_writes.sse.p50_ms@1x"] = aged["p50_ms"]
        fig["progress_after_writes.sse.p99_ms@1x"] = aged["p99_ms"]
        details.setdefault("api", []).append(raw)
    return fig


def multi_process_submit(seconds: float, details: dict[str, Any]) -> dict[str, float]:
    """For reference: the closed loop at the highest scale against an API with one server
    process per core, with its own raw baseline (taken as in `submission_repeat`), on a fresh
    stack."""
    scale = max(SCALES)
    with api_submit.start_stack(CORES) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        url = stack.urls["api"]
        api_submit.run_load(url, api_submit.new_key(adapters), 2, 4, None)  # warm-up
        pids = {name: p.pid for name, p in stack.processes.items() if p.pid is not None}
        writes = max(
            api_submit.firestore_rate(adapters.firestore, 3, threads)["writes_per_s"]
            for threads in (1, 8)
        )
        stack.reset_state()
        with CpuMeter(pids) as meter:
            sub = api_submit.run_load(url, api_submit.new_key(adapters), seconds, scale, None)
    details.setdefault("api_multi_process", []).append({"writes_per_s": writes, "submit": sub})
    return {
        f"submit_per_core.rps@{scale}x": sub["rps"],
        f"submit_per_core.p99_ms@{scale}x": sub["p99_ms"],
        f"cpu.submit_per_core.api_ms_per_req@{scale}x": meter.ms_per(int(sub["requests"]), "api"),
        "submit_per_core.ratio_to_firestore": sub["rps"] / writes,
    }


def stack_at_rest(stack: Stack) -> dict[str, float]:
    """RSS of every process the stack started (with its children), after it settled."""
    time.sleep(5)
    per: dict[str, float] = {}
    for name, proc in stack.processes.items():
        if proc.pid is not None:
            per[name] = round(rss_tree_kb(proc.pid) / 1024, 1)
    return per


def progress_section(repeats: int, events: int, details: dict[str, Any]) -> list[dict[str, float]]:
    """Progress latency on a fresh API stack per repeat.

    The Firestore emulator's listener path slows down with the number of writes it has served,
    and clearing its documents does not undo that: after ~15 s of raw writes an append with one
    listener attached takes ~17 ms instead of ~9. Measured on the stack that had just taken
    the submission phases, the figure would be the emulator's history, not the event path."""
    out: list[dict[str, float]] = []
    for r in range(repeats):
        log.info("progress repeat %d/%d", r + 1, repeats)
        with api_submit.start_stack() as stack:
            os.environ.update(stack.env)
            adapters = Adapters(Settings())
            url = stack.urls["api"]
            # Untimed first pass: the API's first listener, connection and key lookups.
            for transport in TRANSPORTS:
                api_submit.progress_latency(
                    url, api_submit.new_key(adapters), adapters.jobs, 5, transport=transport
                )
            raw: dict[str, Any] = {}
            fig: dict[str, float] = {}
            for transport in TRANSPORTS:
                for scale in SCALES:
                    stack.reset_state()
                    lat = api_submit.progress_latency(
                        url,
                        api_submit.new_key(adapters),
                        adapters.jobs,
                        events,
                        subscribers=scale,
                        transport=transport,
                    )
                    raw[f"progress.{transport}@{scale}x"] = lat
                    fig[f"progress.{transport}.p50_ms@{scale}x"] = lat["p50_ms"]
                    fig[f"progress.{transport}.p99_ms@{scale}x"] = lat["p99_ms"]
                    fig[f"progress.{transport}.lost@{scale}x"] = lat["events"] - lat["received"]
            details.setdefault("progress", []).append(raw)
            out.append(fig)
    return out


def pipeline_section(repeats: int, samples: int, details: dict[str, Any]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    with channels.start_stack(workers=2, slots=4) as stack:
        os.environ.update(stack.env)
        adapters = Adapters(Settings())
        rest = stack_at_rest(stack)
        details["stack_at_rest_mib"] = rest
        for r in range(repeats):
            log.info("pipeline repeat %d/%d", r + 1, repeats)
            fig: dict[str, float] = {"memory.stack_at_rest_mib": round(sum(rest.values()), 1)}
            rep = channels.measure_channels(stack, adapters, samples)
            fig["raw_codex.p50_ms"] = rep["raw_codex"]["p50_ms"]
            fig["raw_codex_seeded.p50_ms"] = rep["raw_codex_seeded"]["p50_ms"]
            for name in ("http_async", "pubsub", "upload", "workflow"):
                if name in rep:
                    fig[f"channel.{name}.latency_p50_ms"] = rep[name]["latency_p50_ms"]
                    fig[f"channel.{name}.overhead_p50_ms"] = rep[name]["overhead_p50_ms"]
                    fig[f"channel.{name}.overhead_p99_ms"] = rep[name]["overhead_p99_ms"]
                    fig[f"channel.{name}.overhead_vs_seeded_p50_ms"] = rep[name][
                        "overhead_vs_seeded_p50_ms"
                    ]
            tps: dict[str, Any] = {}
            for scale in SCALES:
                tp = tps[str(scale)] = channels.measure_throughput(
                    stack, adapters, 2 * scale, rounds=THROUGHPUT_ROUNDS[scale]
                )
                fig[f"throughput.pipeline_jobs_per_s@{scale}x"] = tp["pipeline_pubsub"]
                fig[f"throughput.raw_jobs_per_s@{scale}x"] = tp["raw_codex_parallel"]
                fig[f"throughput.ratio@{scale}x"] = tp["ratio"]
                fig[f"throughput.raw_seeded_jobs_per_s@{scale}x"] = tp["raw_codex_seeded_parallel"]
                fig[f"throughput.ratio_to_seeded@{scale}x"] = tp["ratio_to_seeded"]
                for side in ("pipeline", "raw", "raw_seeded"):
                    per_job: dict[str, float] = tp[f"{side}_cpu_ms_per_job"]
                    for group, ms in per_job.items():
                        fig[f"cpu.{side}.{group}_ms_per_job@{scale}x"] = ms
                    fig[f"cpu.{side}.total_ms_per_job@{scale}x"] = round(sum(per_job.values()), 1)
            details.setdefault("pipeline", []).append({"channels": rep, "throughput": tps})
            out.append(fig)
    return out


# ---- report ----------------------------------------------------------------------------------


def aggregate(rows: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    names: list[str] = []
    for row in rows:
        names += [n for n in row if n not in names]
    figures: dict[str, dict[str, Any]] = {}
    for name in names:
        values = [float(row[name]) for row in rows if name in row]
        figures[name] = {**spread(values), "unit": unit_of(name), "runs": values}
    return figures


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def evaluate(figures: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for t in TARGETS:
        value = figures.get(t.figure, {}).get("median", float("nan"))
        results.append(
            {
                "figure": t.figure,
                "target": f"{t.op} {t.bound:g}",
                "text": t.text,
                "median": value,
                "met": t.met(value),
                "measured": not math.isnan(value),
            }
        )
    return results


SECTIONS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("Worker vs raw codex", lambda n: n.startswith(("worker.", "raw_codex"))),
    ("Submission (POST /v2/exec async)", lambda n: n.startswith(("submit", "firestore."))),
    (
        "CPU per submission and per raw write, by process",
        lambda n: n.startswith(("cpu.submit", "cpu.firestore_write.")),
    ),
    ("Progress latency (event append → client)", lambda n: n.startswith("progress")),
    ("Channels (submit → terminal; overhead = latency - raw codex p50)", lambda n: "channel." in n),
    ("Pipeline throughput", lambda n: n.startswith("throughput.")),
    (
        "CPU per job in the throughput runs, by process group",
        lambda n: n.startswith(("cpu.pipeline.", "cpu.raw.", "cpu.raw_seeded.")),
    ),
    ("Memory", lambda n: n.startswith("memory.")),
)


def scaling_rows(figures: dict[str, dict[str, Any]]) -> list[str]:
    """One line per scaled figure: value at 1x/4x/16x and the efficiency of each step."""
    suffixes = tuple(f"@{s}x" for s in SCALES)
    bases = sorted(
        {n.split("@")[0] for n in figures if n.endswith(suffixes) and not n.startswith("cpu.")}
    )
    lines = [
        "| figure | 1x | 4x | 16x | 1x→4x | 4x→16x |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for base in bases:
        vals = [figures.get(f"{base}@{s}x", {}).get("median", float("nan")) for s in SCALES]
        steps = []
        for a, b in ((0, 1), (1, 2)):
            if vals[a] and not math.isnan(vals[a]) and not math.isnan(vals[b]):
                steps.append(f"x{vals[b] / vals[a]:.2f}")
            else:
                steps.append("-")
        lines.append(f"| `{base}` | {' | '.join(_fmt(v) for v in vals)} | {' | '.join(steps)} |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    figures: dict[str, dict[str, Any]] = report["figures"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `make bench` (`python -m bench.run_all`) on {report['started_at']}, "
        f"{report['config']['repeats']} repeat(s) of every figure, "
        f"{report['duration_s']:.0f} s in all. Figures are medians over the repeats; "
        "the range is min-max over the repeats. Ratios compare with a baseline measured in the "
        "same repeat on the same machine.",
        "",
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['platform']}",
        "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- load average at start {m['loadavg_at_start'][0]:.1f}, at end "
        f"{report['loadavg_at_end'][0]:.1f}"
        + (
            " — the machine was busy before this started (other work), so absolute figures "
            "are pessimistic and spreads wide."
            if m["loadavg_at_start"][0] > m["cores"]
            # The last phase (16x load) is the benchmark's own: a high figure at the end
            # alone says nothing about other work.
            else " (the end figure includes the benchmark's own 16x phase)."
        ),
        "",
        "## Targets",
        "",
        "| target | figure | median | met |",
        "|---|---|---:|:---:|",
    ]
    for t in report["targets"]:
        verdict = ("yes" if t["met"] else "**no**") if t["measured"] else "not measured"
        lines.append(f"| {t['text']} | `{t['figure']}` | {_fmt(t['median'])} | {verdict} |")
    met = sum(t["met"] for t in report["targets"])
    lines += ["", f"{met} of {len(report['targets'])} targets met.", ""]
    for title, pick in SECTIONS:
        names = [n for n in figures if pick(n)]
        if not names:
            continue
        lines += [f"## {title}", "", "| figure | median | range | unit |", "|---|---:|---:|---|"]
        for n in names:
            f = figures[n]
            lines.append(
                f"| `{n}` | {_fmt(f['median'])} | {_fmt(f['min'])}-{_fmt(f['max'])} | {f['unit']} |"
            )
        lines.append("")
    rest = report["details"].get("stack_at_rest_mib", {})
    if rest:
        lines += ["Stack at rest, per process (MiB, with children):", ""]
        lines.append(", ".join(f"{k} {v}" for k, v in sorted(rest.items(), key=lambda kv: -kv[1])))
        lines.append("")
    lines += [
        "## How cost grows with load",
        "",
        "1x / 4x / 16x = connections (submission), subscribers (progress), concurrent jobs "
        "(memory) or 2 / 8 / 32 jobs at once (throughput, on "
        f"{report['config']['worker_slots_total']} worker slots). A step factor of x4 for a "
        "rate means it scaled linearly; x1 means it is saturated; for a latency x1 is flat.",
        "",
        *scaling_rows(figures),
        "",
        "## Notes",
        "",
        "- Progress latency is measured from just before the event's Firestore append (what the "
        "worker does once per batch) to its arrival at the client. The worker batches codex "
        f"events: an event after a quiet spell waits `CODEX_CLOUD_EVENT_FLUSH_MS` "
        f"({report['config']['event_flush_ms']} ms), one in a burst up to "
        f"`CODEX_CLOUD_EVENT_WRITE_INTERVAL_MS` ({report['config']['event_write_interval_ms']} ms)"
        ", before that append, which adds that much to codex → client. It runs on a fresh "
        "API stack per repeat: the Firestore emulator's listener path slows down with the writes "
        "it has served (clearing its documents does not undo that), so the same measurement on "
        "the stack that had just taken the submission phases is given apart as "
        "`progress_after_writes.*`.",
        "- The submission baseline is the higher of the raw Firestore-emulator write rates "
        "(1 and 8 threads). A submission makes one batched Firestore write (the job and its "
        "first event); the API-key lookup is cached and the active-jobs count runs at most "
        "once a second per tenant. The API runs one server process; `submit_per_core.*` is the "
        "16-connection run against one process per core (`CODEX_CLOUD_API_WORKERS`), with its "
        "own baseline, for reference. "
        "The load generator is a separate process with a minimal HTTP/1.1 keep-alive client. "
        "At the maximum rate the load generator, the API and the "
        "emulator share the machine's cores, so CPU, not the emulator's write path, is what "
        "bounds it on a small machine. Each load run first sends one untimed request per "
        "connection (connection set-up, the new key's first lookup); the worst of those is "
        "`submit_half.warmup_max_ms`.",
        "- CPU per submission: what the API process, the Firestore emulator with Redis, and the "
        "load generator (its own Python process, start-up included) each spent per request in "
        "the closed-loop runs; "
        "`cpu.firestore_write.*` the same for one raw write of the baseline. On two cores the "
        "per-request total bounds the rate at about 2,000 / total-ms requests per second.",
        "- The Firestore and Pub/Sub emulators run with `-XX:TieredStopAtLevel=1 "
        "-XX:+UseSerialGC` (`CODEX_CLOUD_EMULATOR_JVM_FLAGS`, decision 0016).",
        "- The worker ratio includes codex itself running slower beside the worker's event "
        "writes on the same cores, and the claim, artifact and session uploads and the final "
        "write; each job logs its per-phase times (`phases_ms`). All overhead repeats run "
        "before the memory runs: after a burst of jobs that time out (their codex trees are "
        "killed; this machine's PID 1 leaves the sandbox helpers as zombies) the worker's next "
        "codex runs were up to 20 % slower, an effect under investigation on its own.",
        "- Raw codex, the baseline of every target, is plain `codex exec` on a fresh "
        "CODEX_HOME per run. The worker instead seeds each new job's home with codex's state "
        "databases, made once per worker (decision 0024): codex then skips some seventy "
        "migrations at start-up. `*seeded*` figures measure raw codex started that way too, in "
        "the same runs: latency and throughput against them are the orchestration's own cost, "
        "without the head start the seeding gives.",
        "- Channel overheads are latency p50 minus the p50 of raw codex runs interleaved with "
        "the channel samples.",
        "- Raw codex in the throughput baseline runs all jobs at once, unbounded by worker slots.",
        "- Throughput is measured in rotating bursts, pipeline, raw and raw seeded, each side "
        "first in turn (6 rounds at 2 jobs, 3 at 8, 1 at 32): jobs/s per side is all its "
        "jobs over all its burst time. A 2-job burst lasts about a second and the machine's "
        "speed drifts between bursts; one pair of bursts moved the 2-job ratio by ±0.1.",
        "- The pipeline stack runs as deployed: two workers behind the pool's balancer (new "
        "sessions go to whichever worker is free, decision 0104), the sweeper every minute and "
        "the default lease and heartbeat (the local stack's seconds-long ones are for quick "
        "recovery in tests). Completion is seen with a document listener per job, which costs "
        "the emulator nothing on other writes; a query listener would be re-run against the "
        "whole jobs collection on every job write.",
        "- CPU per job: CPU seconds each process group spent during a throughput burst (from "
        "/proc, every descendant included), divided by the jobs. `codex` is what the workers' "
        "children used; `worker` the worker processes themselves; `functions` the Cloud Run "
        "functions and the API; `emulators` the Firestore, Pub/Sub, Cloud Tasks, Storage and "
        "Workflows emulators, Redis and the Eventarc stand-in (managed services off the machine "
        "in production); `model` the scripted model server; `bench` this process (publishing, "
        "its completion listeners). Idle work during the burst (sweeps, heartbeats) is "
        "included. On two cores both sides are CPU-bound from 2 jobs on, so the throughput "
        "ratio follows the CPU totals.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one short repeat (smoke check)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    configure_logging("WARNING")
    log.setLevel(logging.INFO)
    repeats = 1 if args.quick else args.repeats
    # The worker comparison needs >= 20 interleaved runs of each kind per repeat to be steadier
    # than the few per cent it measures; a p99 needs a few hundred requests.
    runs = 3 if args.quick else 20
    seconds = 2.0 if args.quick else 5.0
    events = 10 if args.quick else 20
    samples = 2 if args.quick else 4
    started = time.monotonic()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "config": {
            "repeats": repeats,
            "worker_runs_per_repeat": runs,
            "submit_seconds_per_phase": seconds,
            "progress_events_per_subscriber": events,
            "channel_samples_per_repeat": samples,
            "scales": list(SCALES),
            "worker_slots_total": 8,
            "event_flush_ms": Settings().event_flush_ms,
            "event_write_interval_ms": Settings().event_write_interval_ms,
        },
    }
    details: dict[str, Any] = {}
    rows: list[dict[str, float]] = []
    saved = dict(os.environ)
    try:
        # Figures from one repeat of each section are merged into one row per repeat.
        sections = (
            worker_section(repeats, runs, details),
            api_section(repeats, seconds, events, details),
            progress_section(repeats, events, details),
            pipeline_section(repeats, samples, details),
        )
        for r in range(repeats):
            row: dict[str, float] = {}
            for sec in sections:
                if r < len(sec):
                    row.update(sec[r])
            rows.append(row)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["loadavg_at_end"] = os.getloadavg()
    report["figures"] = aggregate(rows)
    report["targets"] = evaluate(report["figures"])
    report["details"] = details
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = render_markdown(report)
    (args.out_dir / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
