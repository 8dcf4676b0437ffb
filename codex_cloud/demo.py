"""`make demo` (`python -m codex_cloud.demo`): the whole system, offline, in one command.

Starts the local stack (real emulators, real codex, the scripted model unless
CODEX_CLOUD_OPENAI_API_KEY is set), creates an API key, and runs one job through every channel
— HTTP sync, HTTP async with live SSE progress, a WebSocket session with a follow-up turn,
Pub/Sub, and an upload-bucket drop — printing progress as it happens and a summary table.
Exits 0 only when every job succeeded; everything started is stopped on exit unless --keep.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from codex_cloud import local
from codex_cloud.client import Client
from codex_cloud.errors import ClientError, NotFoundError
from codex_cloud.models import Event, Job
from codex_cloud.render import Style, event_lines, table

TENANT = "demo"
JOB_TIMEOUT_MS = 180_000
CHANNEL_DEADLINE_S = 240.0
HELLO = (
    "[[script:hello]] Create hello.py that prints a greeting, run it, and tell me what it printed."
)
FIRST_TURN = "[[script:followup]] Create note.txt containing the line 'first turn'."
FOLLOW_UP = "Append the line 'second turn' to note.txt and show me the whole file."


@dataclass
class Row:
    channel: str
    job_id: str = "-"
    status: str = "not run"
    duration_s: float | None = None
    result: str = ""
    artifacts: str = ""
    detail: str = ""


class Printer:
    """Interleaved live lines from the channel threads, one whole line at a time."""

    def __init__(self, out: TextIO, style: Style) -> None:
        self.out = out
        self.style = style
        self._lock = threading.Lock()
        self._width = len("ws follow-up")

    def line(self, channel: str, job_id: str | None, text: str) -> None:
        tag = self.style(f"[{channel:<{self._width}}]", "bold")
        job = self.style((job_id or "")[:8].ljust(8), "dim")
        with self._lock:
            self.out.write(f"{tag} {job} {text}\n")
            self.out.flush()

    def event(self, channel: str, event: Event) -> None:
        for text in event_lines(event, self.style):
            self.line(channel, event.job_id, text)

    def say(self, text: str = "") -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


class Demo:
    def __init__(self, client: Client, api_url: str, printer: Printer) -> None:
        self.client = client
        self.api_url = api_url
        self.p = printer
        self.adapters = local.adapters()
        settings = self.adapters.settings
        self.results_bucket = settings.topology.bucket("results")
        self.outputs_bucket = settings.topology.bucket("outputs")

    # ---- shared steps ------------------------------------------------------------------

    def follow(self, channel: str, job_id: str) -> Job:
        for event in self.client.events(job_id):
            self.p.event(channel, event)
        return self.client.get(job_id)

    def wait_exists(self, job_id: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.get(job_id)
                return
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def finish(self, row: Row, job: Job, started: float, result_object: str) -> Row:
        row.job_id = job.job_id
        row.status = job.status
        row.duration_s = time.monotonic() - started
        row.result = self.await_result(result_object)
        row.artifacts = f"gs://{self.outputs_bucket}/{job.job_id}/"
        if job.error_message:
            row.detail = job.error_message
        return row

    def await_result(self, name: str, timeout_s: float = 60.0) -> str:
        """The results-bucket summary path once on_job_written has written it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.adapters.storage.stat(self.results_bucket, name) is not None:
                return f"gs://{self.results_bucket}/{name}"
            time.sleep(0.2)
        return "(summary not written)"

    # ---- channels ----------------------------------------------------------------------

    def http_sync(self) -> Row:
        row = Row("http sync")
        started = time.monotonic()
        # The Idempotency-Key fixes the job id up front, so its events can be shown while the
        # sync request is still waiting for the answer.
        key = f"demo-sync-{uuid.uuid4().hex}"
        job_id = local.pubsub_job_id(TENANT, key)
        follower = threading.Thread(target=self._follow_quietly, args=("http sync", job_id))
        follower.start()
        self.p.line(row.channel, job_id, "POST /v2/exec mode=sync (waits for the result)")
        answer = self.client.submit(
            HELLO, mode="sync", idempotency_key=key, timeout_ms=JOB_TIMEOUT_MS
        )
        follower.join(timeout=30)
        self.p.line(row.channel, job_id, f"answered {answer.status} (exit {answer.exit_code})")
        return self.finish(
            row, self.client.get(answer.job_id), started, f"jobs/{answer.job_id}.json"
        )

    def _follow_quietly(self, channel: str, job_id: str) -> None:
        try:
            self.wait_exists(job_id)
            for event in self.client.events(job_id):
                self.p.event(channel, event)
        except ClientError as exc:
            self.p.line(channel, job_id, f"(event stream ended: {exc})")

    def http_async(self) -> Row:
        row = Row("http async")
        started = time.monotonic()
        accepted = self.client.submit(HELLO, mode="async", timeout_ms=JOB_TIMEOUT_MS)
        self.p.line(row.channel, accepted.job_id, f"202 accepted; following {accepted.events_url}")
        job = self.follow(row.channel, accepted.job_id)
        return self.finish(row, job, started, f"jobs/{job.job_id}.json")

    def websocket(self) -> list[Row]:
        first, second = Row("websocket"), Row("ws follow-up")
        started = time.monotonic()
        with self.client.stream(FIRST_TURN, timeout_ms=JOB_TIMEOUT_MS) as session:
            self.p.line(
                first.channel, session.first.job_id, f"connected to session {session.session_id}"
            )
            for event in session.events(timeout_s=CHANNEL_DEADLINE_S):
                self.p.event(first.channel, event)
            self.finish(
                first,
                self.client.get(session.first.job_id),
                started,
                f"jobs/{session.first.job_id}.json",
            )
            started = time.monotonic()
            self.p.line(second.channel, None, "same connection, second prompt (resumes the thread)")
            session.send(FOLLOW_UP, timeout_ms=JOB_TIMEOUT_MS)
            follow_up_id = ""
            for event in session.events(timeout_s=CHANNEL_DEADLINE_S):
                follow_up_id = event.job_id or follow_up_id
                self.p.event(second.channel, event)
        if follow_up_id:
            self.finish(second, self.client.get(follow_up_id), started, f"jobs/{follow_up_id}.json")
        return [first, second]

    def pubsub(self) -> Row:
        row = Row("pubsub")
        started = time.monotonic()
        key = f"demo-pubsub-{uuid.uuid4().hex}"
        body = {"prompt": HELLO, "timeout_ms": JOB_TIMEOUT_MS, "idempotency_key": key}
        message_id = local.publish(self.adapters, body, tenant=TENANT)
        job_id = local.pubsub_job_id(TENANT, key)
        topic = self.adapters.settings.topology.topic("jobs")
        self.p.line(row.channel, job_id, f"published message {message_id} to {topic}")
        self.wait_exists(job_id)
        job = self.follow(row.channel, job_id)
        return self.finish(row, job, started, f"jobs/{job_id}.json")

    def upload(self) -> Row:
        row = Row("upload")
        started = time.monotonic()
        name = f"tenants/{TENANT}/demo-{uuid.uuid4().hex[:8]}.json"
        spec = json.dumps({"prompt": HELLO, "timeout_ms": JOB_TIMEOUT_MS}).encode()
        url, generation = local.upload(self.adapters, name, spec, content_type="application/json")
        job_id = local.upload_job_id(self.adapters, TENANT, name, generation or 0)
        self.p.line(row.channel, job_id, f"dropped {url}")
        self.wait_exists(job_id)
        job = self.follow(row.channel, job_id)
        return self.finish(row, job, started, f"uploads/{name}.result.json")


def run_channels(demo: Demo, printer: Printer) -> list[Row]:
    """Every channel at once (the workers have slots for them), each in its own thread."""
    plan: list[tuple[str, Callable[[], Row | list[Row]]]] = [
        ("http sync", demo.http_sync),
        ("http async", demo.http_async),
        ("websocket", demo.websocket),
        ("pubsub", demo.pubsub),
        ("upload", demo.upload),
    ]
    results: dict[str, list[Row]] = {}

    def runner(name: str, fn: Callable[[], Row | list[Row]]) -> None:
        try:
            out = fn()
            results[name] = out if isinstance(out, list) else [out]
        except Exception as exc:  # a channel's failure is a row in the table, not a crash
            printer.line(name, None, printer.style(f"! {type(exc).__name__}: {exc}", "red"))
            rows = [Row(name, status="error", detail=str(exc))]
            if name == "websocket":
                rows.append(Row("ws follow-up", status="error", detail="first turn failed"))
            results[name] = rows

    threads = [threading.Thread(target=runner, args=item, daemon=True) for item in plan]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + CHANNEL_DEADLINE_S
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    rows: list[Row] = []
    for name, _ in plan:
        rows += results.get(name, [Row(name, status="no answer")])
    return rows


def summary(rows: list[Row], api_url: str) -> list[str]:
    body = [
        [
            r.channel,
            r.job_id,
            r.status,
            f"{r.duration_s:.1f}s" if r.duration_s is not None else "-",
            r.result or r.detail,
        ]
        for r in rows
    ]
    lines = table(body, ["CHANNEL", "JOB", "STATUS", "DURATION", "RESULT SUMMARY"])
    lines += [
        "",
        "artifacts: gs://codex-outputs/<job>/ (diff.patch, final-message.txt, events.jsonl, "
        "changes.tar.gz)",
        f"API:       {api_url}/v2/jobs/<job> · /events · /artifacts",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codex_cloud.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the stack up until Ctrl-C")
    parser.add_argument("--state-dir", type=Path, default=None, help="logs and state root")
    parser.add_argument("--no-color", action="store_true")
    args = parser.parse_args(argv)
    out = sys.stdout
    style = Style(out.isatty() and not args.no_color and not os.environ.get("NO_COLOR"))
    printer = Printer(out, style)

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a process started in the background by a shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler, so Ctrl-C (or a supervisor's SIGINT)
    # would leave the stack running.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    from devstack.preflight import MissingDependency
    from devstack.stack import Stack, StackOptions
    from shared.log import configure_logging

    configure_logging("ERROR")
    logging.getLogger().setLevel(logging.ERROR)
    model = (
        "the OpenAI API (CODEX_CLOUD_OPENAI_API_KEY is set)"
        if os.environ.get("CODEX_CLOUD_OPENAI_API_KEY")
        else "the scripted model server (offline)"
    )
    printer.say(style("codex-cloud demo", "bold") + f" — real codex, local emulators, {model}")
    stack = Stack(StackOptions(workers=2, worker_slots=3, state_dir=args.state_dir))
    t0 = time.monotonic()
    try:
        try:
            stack.start()
        except MissingDependency as exc:
            printer.say(f"error: {exc}")
            return 1
        printer.say(
            f"local stack up in {time.monotonic() - t0:.1f}s · logs in {stack.state_dir / 'logs'}"
        )
        os.environ.update(stack.env)
        api_url = stack.urls["api"]
        from shared.apikeys import create_key

        adapters = local.adapters()
        key = create_key(adapters.firestore, adapters.settings, tenant=TENANT, name="demo").key
        printer.say(f"API key for tenant {TENANT!r} created; API at {api_url}")
        printer.say()
        t1 = time.monotonic()
        with Client(api_url, key) as client:
            rows = run_channels(Demo(client, api_url, printer), printer)
        ok = all(r.status == "succeeded" for r in rows)
        printer.say()
        for line in summary(rows, api_url):
            printer.say(line)
        verdict = (
            style("all jobs succeeded", "green")
            if ok
            else style("some jobs did not succeed", "red")
        )
        printer.say(
            f"\n{verdict} · jobs {time.monotonic() - t1:.1f}s · total {time.monotonic() - t0:.1f}s"
        )
        if args.keep:
            printer.say(f"\nThe stack stays up. Console: {api_url}/console/ (API key: {key})")
            printer.say(f"Client environment: source {stack.write_env_file()}; Ctrl-C stops it.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                printer.say("\nstopping the stack")
        return 0 if ok else 1
    except KeyboardInterrupt:
        printer.say("\ninterrupted; stopping the stack")
        return 130
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
