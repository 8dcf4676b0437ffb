"""`codex-cloud`: the command line for codex-cloud (docs/cli.md).

Exit codes: 0 succeeded, 1 failed, 2 usage or invalid request, 3 cancelled, 4 timed out,
5 not found or not authorised, 6 rate limited or unavailable, 7 still running when a wait
ended, 130 interrupted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

import yaml

from codex_cloud import config as cfg
from codex_cloud import local
from codex_cloud.cli_output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND_OR_AUTH,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Live,
    describe,
    exit_for_error,
    exit_for_status,
    hint_for,
    print_json,
    report_error,
)
from codex_cloud.client import Client
from codex_cloud.errors import ClientError, NotFoundError
from codex_cloud.models import Job
from codex_cloud.render import Style, diff_lines, event_lines, outcome_lines, table


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


class ArgumentsError(UsageError):
    """argparse rejected the command line; `usage` is the usage text of the parser concerned."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises instead of printing and exiting, so that main() reports the mistake like any
    other error (as JSON under --json). Subcommand parsers inherit this class."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentsError(message, self.format_usage())


@dataclass
class Ctx:
    args: argparse.Namespace
    config: cfg.Config
    style: Style
    out: TextIO
    err: TextIO

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def client(self) -> Client:
        return Client(self.config.api_url, self.config.api_key)

    def say(self, text: str = "") -> None:
        if not self.json:
            self.out.write(text + "\n")

    def note(self, text: str) -> None:
        """Progress chatter: stderr, so stdout stays clean for pipes."""
        if not self.json and not self.args.quiet:
            self.err.write(self.style(text, "dim") + "\n")

    def fail(
        self,
        message: str,
        code: int,
        *,
        hint: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> int:
        """Report an error (JSON under --json); the exit code."""
        return report_error(
            self.err, message, code, as_json=self.json, hint=hint, body=body, style=self.style
        )


# ---- argument parsing ------------------------------------------------------------------------


def parse_duration_ms(text: str) -> int:
    """`90`, `90s`, `5m`, `1h`, `500ms` → milliseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 90s, 5m, 1h)")
    value = float(match.group(1))
    scale = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[match.group(2) or "s"]
    return int(value * scale)


def _metadata(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"metadata must be KEY=VALUE, not {text!r}")
    return key, value


def _job_request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", help="the prompt; `-` reads it from stdin")
    p.add_argument("-f", "--file", type=Path, help="read the prompt from a file")
    p.add_argument("--priority", choices=["low", "normal", "high", "critical"])
    p.add_argument("--timeout", type=parse_duration_ms, help="job timeout (90s, 5m, 1h)")
    p.add_argument("--session", help="session id: a follow-up turn of an earlier job")
    p.add_argument("--output-schema", type=Path, help="JSON Schema file for the final answer")
    p.add_argument("--webhook", help="URL to POST the signed result to")
    p.add_argument("--metadata", type=_metadata, action="append", default=[], help="KEY=VALUE")
    p.add_argument("--idempotency-key", help="same key and body → the same job")


def _suppressed(action: argparse.Action) -> argparse.Action:
    clone = copy.copy(action)
    clone.default = argparse.SUPPRESS
    return clone


class _Subcommands:
    """add_parser() that gives every subcommand the global options."""

    def __init__(self, actions: Any, common: argparse.ArgumentParser) -> None:
        self._actions = actions
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._actions.add_parser(
            name, parents=[self._common], **kwargs
        )
        return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="codex-cloud",
        description="Run the codex coding agent on codex-cloud.",
        epilog="Exit codes: 0 succeeded, 1 failed, 2 usage, 3 cancelled, 4 timed out, "
        "5 not found/auth, 6 rate limited/unavailable, 7 still running. See docs/cli.md.",
    )
    # Global options work before or after the command (`codex-cloud list --json`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="API base URL (env CODEX_CLOUD_API_URL)")
    common.add_argument("--api-key", help="API key (env CODEX_CLOUD_API_KEY)")
    common.add_argument("--config", type=Path, help="config file (env CODEX_CLOUD_CONFIG)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--no-color", action="store_true", help="no ANSI colours")
    common.add_argument("-q", "--quiet", action="store_true", help="less chatter on stderr")
    for action in common._actions:
        parser._add_action(action)
    # In a subcommand an absent option must not reset one given before the command.
    sub_common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    for action in common._actions:
        sub_common._add_action(_suppressed(action))
    sub = _Subcommands(
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), sub_common
    )

    # No positional here: main() hands every option it does not know to devstack, in order.
    # No abbreviations either, or `--no-model` would be taken for an ambiguous `--no-color`.
    p = sub.add_parser(
        "dev",
        help="run the local stack until Ctrl-C (same as `make dev`)",
        description="Run the local stack until Ctrl-C. Other options (--workers N, --slots N, "
        "--no-model, --sweep-interval S, --state-dir DIR) go to `python -m devstack`; put them "
        "after `--` if one has the name of a codex-cloud option.",
        allow_abbrev=False,
    )
    p.set_defaults(devstack_args=[])

    p = sub.add_parser("submit", help="submit a job over HTTP")
    _job_request_options(p)
    p.add_argument("--mode", choices=["sync", "async", "stream"], default="async")
    ws = p.add_mutually_exclusive_group()
    ws.add_argument("--dir", type=Path, help="use a local directory as the workspace")
    ws.add_argument("--git", help="clone this git URL as the workspace")
    ws.add_argument("--archive", help="workspace archive: gs://bucket/object or a local .tar.gz")
    p.add_argument("--ref", default=None, help="git ref for --git (default HEAD)")
    p.add_argument("--tenant", help="tenant prefix for uploaded workspaces")
    p.add_argument("-w", "--wait", "--watch", dest="wait", action="store_true", help="follow")

    p = sub.add_parser("status", help="show a job")
    p.add_argument("job_id")

    p = sub.add_parser("list", help="list jobs, newest first")
    p.add_argument("--status")
    p.add_argument("--channel", choices=["http", "pubsub", "upload"])
    p.add_argument("--limit", type=int, default=20)

    p = sub.add_parser("watch", help="follow a job's events live until it finishes")
    p.add_argument("job_id")
    p.add_argument("--no-diff", action="store_true", help="do not print the diff at the end")

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job_id")

    p = sub.add_parser("events", help="print a job's events (follows until the final one)")
    p.add_argument("job_id")
    p.add_argument("--after", type=int, default=-1, help="only events after this sequence")

    p = sub.add_parser("artifacts", help="list or download a job's artifacts")
    p.add_argument("job_id")
    p.add_argument("--download", type=Path, metavar="DIR", help="save them all into DIR")
    p.add_argument("--cat", metavar="NAME", help="write one artifact to stdout")

    p = sub.add_parser("publish", help="publish a job message to Pub/Sub (codex-jobs)")
    _job_request_options(p)
    p.add_argument("--tenant", help="tenant attribute (a tenant with an API key)")
    p.add_argument("-w", "--wait", dest="wait", action="store_true", help="follow it via the API")

    p = sub.add_parser("upload", help="drop a job spec or archive into the uploads bucket")
    p.add_argument("path", nargs="?", type=Path, help="a .json/.yaml spec or .tar.gz/.zip")
    p.add_argument("--prompt", help="write a spec with this prompt instead of a file")
    p.add_argument("--dir", type=Path, help="with --prompt: upload this directory as an archive")
    p.add_argument("--tenant", help="tenant prefix (tenants/NAME/…)")
    p.add_argument("-w", "--wait", dest="wait", action="store_true", help="wait for the result")
    p.add_argument("--wait-timeout", type=parse_duration_ms, default=600_000)

    p = sub.add_parser("keys", help="manage API keys (needs Firestore access)")
    keys = _Subcommands(
        p.add_subparsers(dest="keys_command", required=True, metavar="ACTION"), sub_common
    )
    k = keys.add_parser("create", help="create a key (shown once)")
    k.add_argument("--tenant", required=True)
    k.add_argument("--name", default="cli")
    k.add_argument("--tier", choices=["STANDARD", "PREMIUM"], default="STANDARD")
    k.add_argument("--scopes", default="read,write", help="comma-separated: read,write,admin")
    k.add_argument("--save", action="store_true", help="store it (and the tenant) in the config")
    k = keys.add_parser("list", help="list keys")
    k.add_argument("--tenant")
    k = keys.add_parser("revoke", help="revoke a key by its id")
    k.add_argument("key_id")

    sub.add_parser("config", help="show the effective configuration and where it came from")
    return parser


# ---- helpers -----------------------------------------------------------------------------


def read_prompt(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.file is not None and args.prompt is not None:
        raise UsageError("give the prompt as an argument or with -f, not both")
    text: str
    if args.file is not None:
        try:
            text = args.file.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    elif args.prompt == "-":
        text = stdin.read()
    elif args.prompt:
        text = str(args.prompt)
    else:
        raise UsageError("a prompt is required: an argument, -f FILE, or - for stdin")
    if not text.strip():
        raise UsageError("the prompt is empty")
    return text


def request_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "priority": args.priority,
        "timeout_ms": args.timeout,
        "session_id": args.session,
        "metadata": dict(args.metadata) or None,
    }
    if args.webhook:
        fields["webhook"] = {"url": args.webhook}
    if args.output_schema is not None:
        try:
            fields["output_schema"] = json.loads(args.output_schema.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--output-schema {args.output_schema}: {exc}") from None
    return {k: v for k, v in fields.items() if v is not None}


def workspace_for(ctx: Ctx) -> dict[str, Any] | None:
    args = ctx.args
    if args.ref and not args.git:
        raise UsageError("--ref needs --git")
    if args.git:
        return {"type": "git", "url": args.git, "ref": args.ref or "HEAD"}
    if args.dir is not None:
        if not args.dir.is_dir():
            raise UsageError(f"--dir {args.dir}: not a directory")
        ctx.note(f"uploading {args.dir} to the uploads bucket …")
        try:
            return local.upload_workspace(local.adapters(), args.dir, tenant_of(ctx))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.archive:
        return archive_workspace(ctx, args.archive)
    return None


def archive_workspace(ctx: Ctx, archive: str) -> dict[str, Any]:
    match = re.fullmatch(r"gs://([^/]+)/(.+)", archive)
    if match:
        return {"type": "archive", "bucket": match.group(1), "object": match.group(2)}
    path = Path(archive)
    if not path.is_file():
        raise UsageError(f"--archive {archive}: not gs://bucket/object nor a local file")
    adapters = local.adapters()
    name = f"{local.WORKSPACES_PREFIX}{tenant_of(ctx) or 'default'}/{uuid.uuid4().hex}-{path.name}"
    url, _ = local.upload(adapters, name, path.read_bytes(), content_type="application/gzip")
    ctx.note(f"uploaded {path} to {url}")
    return {"type": "archive", "bucket": adapters.storage.bucket_name("uploads"), "object": name}


def tenant_of(ctx: Ctx) -> str | None:
    given: str | None = getattr(ctx.args, "tenant", None)
    return given or ctx.config.tenant


def follow(ctx: Ctx, client: Client, job_id: str, *, show_diff: bool = True) -> Job:
    """Render the job's events live, then its outcome and diff; the finished job."""
    if ctx.json:
        return client.wait(job_id)
    with Live(ctx.err, ctx.style) as live:
        for event in client.events(job_id, include_heartbeats=True):
            live.event(event)
    job = client.get(job_id)
    finish(ctx, client, job, show_diff=show_diff)
    return job


def finish(ctx: Ctx, client: Client, job: Job, *, show_diff: bool = True) -> None:
    ctx.say()
    for line in outcome_lines(job, ctx.style):
        ctx.say(line)
    if show_diff and "diff.patch" in job.artifacts:
        try:
            patch = client.download_artifact(job.job_id, "diff.patch").decode(errors="replace")
        except NotFoundError:
            patch = ""
        if patch.strip():
            ctx.say()
            for line in diff_lines(patch, ctx.style):
                ctx.say(line)
    if job.artifacts:
        ctx.say()
        ctx.say(ctx.style("artifacts: ", "dim") + f"codex-cloud artifacts {job.job_id}")


def job_json(job: Job) -> dict[str, Any]:
    return job.raw


# ---- commands ----------------------------------------------------------------------------


def cmd_dev(ctx: Ctx) -> int:
    argv = [sys.executable, "-m", "devstack", *ctx.args.devstack_args]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process, as `make dev` would
    return EXIT_OK  # pragma: no cover


def cmd_submit(ctx: Ctx, stdin: TextIO) -> int:
    args = ctx.args
    prompt = read_prompt(args, stdin)
    fields = request_fields(args)
    workspace = workspace_for(ctx)
    if workspace is not None:
        fields["workspace"] = workspace
    with ctx.client() as client:
        if args.mode == "stream":
            return stream_turn(ctx, client, prompt, fields)
        submitted = client.submit(
            prompt, mode=args.mode, idempotency_key=args.idempotency_key, **fields
        )
        if args.mode == "sync" and submitted.terminal:
            job = client.get(submitted.job_id)
            if ctx.json:
                print_json(job_json(job), ctx.out)
            else:
                finish(ctx, client, job)
            return exit_for_status(job.status)
        if not args.wait:
            if ctx.json:
                print_json(submitted.raw, ctx.out)
            else:
                ctx.say(submitted.job_id)
                ctx.note(f"follow it: codex-cloud watch {submitted.job_id}")
            return EXIT_OK
        ctx.note(f"job {submitted.job_id} (session {submitted.session_id})")
        job = follow(ctx, client, submitted.job_id)
        if ctx.json:
            print_json(job_json(job), ctx.out)
        return exit_for_status(job.status)


def stream_turn(ctx: Ctx, client: Client, prompt: str, fields: dict[str, Any]) -> int:
    session_id = fields.pop("session_id", None)
    fields.pop("idempotency_key", None)
    with client.stream(prompt, session_id=session_id, **fields) as session:
        ctx.note(f"job {session.first.job_id} (session {session.session_id}) over WebSocket")
        with Live(ctx.err, ctx.style) as live:
            for event in session.events(include_heartbeats=True):
                if not ctx.json:
                    live.event(event)
    job = client.get(session.first.job_id)
    if ctx.json:
        print_json(job_json(job), ctx.out)
    else:
        finish(ctx, client, job)
    return exit_for_status(job.status)


def cmd_status(ctx: Ctx) -> int:
    with ctx.client() as client:
        job = client.get(ctx.args.job_id)
    if ctx.json:
        print_json(job_json(job), ctx.out)
    else:
        rows = [
            ("job", job.job_id),
            ("status", ctx.style.status(job.status)),
            ("session", job.session_id),
            ("channel", job.channel),
            ("mode", job.mode),
            ("priority", job.priority),
            ("created", job.created_at or ""),
            ("finished", job.finished_at or ""),
        ]
        if job.execution_time_ms is not None:
            rows.append(("duration", f"{job.execution_time_ms / 1000:.1f}s"))
        if job.error_message:
            rows.append(("error", job.error_message))
        for name, path in sorted(job.artifacts.items()):
            rows.append((f"artifact {name}", path))
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            ctx.say(f"{ctx.style(key.rjust(width), 'dim')}  {value}")
        if job.final_message:
            ctx.say()
            ctx.say(job.final_message.rstrip())
    return exit_for_status(job.status, waited=False)


def cmd_list(ctx: Ctx) -> int:
    args = ctx.args
    with ctx.client() as client:
        page = client.list_jobs(status=args.status, channel=args.channel, limit=args.limit)
    if ctx.json:
        print_json({"jobs": [j.raw for j in page.jobs], "next_cursor": page.next_cursor}, ctx.out)
        return EXIT_OK
    if not page.jobs:
        ctx.note("no jobs")
        return EXIT_OK
    rows = []
    for job in page.jobs:
        prompt = str((job.raw.get("request") or {}).get("prompt", "")).replace("\n", " ")
        rows.append(
            [
                job.job_id,
                job.status,
                job.channel,
                job.mode,
                (job.created_at or "")[:19].replace("T", " "),
                prompt[:48] + ("…" if len(prompt) > 48 else ""),
            ]
        )
    for line in table(rows, ["JOB", "STATUS", "CHANNEL", "MODE", "CREATED", "PROMPT"]):
        ctx.say(line)
    return EXIT_OK


def cmd_watch(ctx: Ctx) -> int:
    with ctx.client() as client:
        job = follow(ctx, client, ctx.args.job_id, show_diff=not ctx.args.no_diff)
    if ctx.json:
        print_json(job_json(job), ctx.out)
    return exit_for_status(job.status)


def cmd_cancel(ctx: Ctx) -> int:
    with ctx.client() as client:
        job = client.cancel(ctx.args.job_id)
    if ctx.json:
        print_json(job_json(job), ctx.out)
    else:
        state = job.status if job.terminal else f"{job.status} (cancel requested)"
        ctx.say(f"{job.job_id} {state}")
    return EXIT_OK


def cmd_events(ctx: Ctx) -> int:
    with ctx.client() as client:
        for event in client.events(ctx.args.job_id, after=ctx.args.after):
            if ctx.json:
                ctx.out.write(json.dumps(event.raw, default=str) + "\n")
                ctx.out.flush()
                continue
            lines = [
                f"{ctx.style(f'{event.seq:>4}', 'dim')} {ctx.style(event.message_type, 'dim')}"
            ]
            rendered = event_lines(event, ctx.style)
            ctx.say(lines[0] + " " + (rendered[0] if rendered else _compact(event.data)))
            for extra in rendered[1:]:
                ctx.say("          " + extra)
    return EXIT_OK


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)[:160]


def cmd_artifacts(ctx: Ctx) -> int:
    args = ctx.args
    with ctx.client() as client:
        if args.cat:
            data = client.download_artifact(args.job_id, args.cat)
            if ctx.out is sys.stdout:
                sys.stdout.flush()
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            else:
                ctx.out.write(data.decode(errors="replace"))
            return EXIT_OK
        artifacts = client.artifacts(args.job_id)
        saved: list[Path] = []
        if args.download is not None:
            saved = client.download_artifacts(args.job_id, args.download)
    if ctx.json:
        print_json(
            {
                "job_id": args.job_id,
                "artifacts": [a.__dict__ for a in artifacts],
                "downloaded": [str(p) for p in saved],
            },
            ctx.out,
        )
        return EXIT_OK
    rows = [[a.name, str(a.size), a.content_type or "", a.url] for a in artifacts]
    for line in table(rows, ["NAME", "BYTES", "TYPE", "URL"]):
        ctx.say(line)
    for path in saved:
        ctx.note(f"saved {path}")
    return EXIT_OK


def cmd_publish(ctx: Ctx, stdin: TextIO) -> int:
    args = ctx.args
    body: dict[str, Any] = {"prompt": read_prompt(args, stdin), **request_fields(args)}
    tenant = tenant_of(ctx) or "default"
    key = args.idempotency_key or f"cli-{uuid.uuid4().hex}"
    body["idempotency_key"] = key
    adapters = local.adapters()
    message_id = local.publish(adapters, body, tenant=tenant)
    job_id = local.pubsub_job_id(tenant, key)
    result = {"message_id": message_id, "job_id": job_id, "tenant": tenant}
    if not args.wait:
        if ctx.json:
            print_json(result, ctx.out)
        else:
            ctx.say(job_id)
            ctx.note(f"published message {message_id}; follow it: codex-cloud watch {job_id}")
        return EXIT_OK
    with ctx.client() as client:
        wait_until_exists(client, job_id, timeout_s=30)
        job = follow(ctx, client, job_id)
    if ctx.json:
        print_json({**result, "job": job.raw}, ctx.out)
    return exit_for_status(job.status)


def wait_until_exists(client: Client, job_id: str, *, timeout_s: float) -> Job:
    """Machine channels create the job asynchronously: poll until the API knows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.get(job_id)
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cmd_upload(ctx: Ctx) -> int:
    args = ctx.args
    tenant = tenant_of(ctx)
    if args.prompt:
        if args.path is not None:
            raise UsageError("give a file or --prompt, not both")
        spec = {"prompt": args.prompt}
        if args.dir is not None:
            if not args.dir.is_dir():
                raise UsageError(f"--dir {args.dir}: not a directory")
            data = local.tar_directory(args.dir, {"codex-job.json": json.dumps(spec).encode()})
            filename, content_type = (
                f"{args.dir.resolve().name or 'workspace'}.tar.gz",
                "application/gzip",
            )
        else:
            data, filename, content_type = json.dumps(spec).encode(), "job.json", "application/json"
    elif args.path is not None:
        if not args.path.is_file():
            raise UsageError(f"{args.path}: no such file")
        data, filename = args.path.read_bytes(), args.path.name
        content_type = (
            "application/json" if filename.endswith(".json") else "application/octet-stream"
        )
        if filename.endswith((".yaml", ".yml")):
            try:
                yaml.safe_load(data)
            except yaml.YAMLError as exc:
                raise UsageError(f"{args.path}: not valid YAML: {exc}") from None
    else:
        raise UsageError("give a spec/archive file or --prompt")
    adapters = local.adapters()
    name = local.upload_object_name(tenant, filename)
    url, generation = local.upload(adapters, name, data, content_type=content_type)
    job_id = local.upload_job_id(
        adapters, tenant or adapters.settings.upload_default_tenant, name, generation or 0
    )
    result: dict[str, Any] = {"object": url, "job_id": job_id}
    if not args.wait:
        if ctx.json:
            print_json(result, ctx.out)
        else:
            ctx.say(url)
            ctx.note(f"job {job_id}; the summary lands in gs://…/uploads/{name}.result.json")
        return EXIT_OK
    ctx.note(f"uploaded {url}; waiting for the result summary …")
    deadline = time.monotonic() + args.wait_timeout / 1000
    summary: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        summary = local.result_summary(adapters, name)
        if summary is not None:
            break
        problem = local.upload_error(adapters, name)
        if problem is not None:
            result["error"] = problem
            if ctx.json:
                print_json(result, ctx.out)
                return EXIT_USAGE
            return ctx.fail(
                f"upload rejected ({problem.get('reason')}): {problem.get('detail')}", EXIT_USAGE
            )
        time.sleep(0.5)
    if summary is None:
        if ctx.json:
            print_json(result, ctx.out)
            return EXIT_PENDING
        return ctx.fail(f"no result for {url} yet (job {job_id})", EXIT_PENDING)
    result["summary"] = summary
    if ctx.json:
        print_json(result, ctx.out)
    else:
        status = str(summary.get("status"))
        ctx.say(f"{ctx.style('job', 'bold')} {summary.get('job_id')} {ctx.style.status(status)}")
        message = ((summary.get("result") or {}).get("final_message") or "").rstrip()
        if message:
            ctx.say()
            ctx.say(message)
        ctx.say()
        ctx.say(ctx.style("summary:   ", "dim") + str(summary.get("results_object")))
        ctx.say(ctx.style("artifacts: ", "dim") + str(summary.get("artifacts_prefix")))
    return exit_for_status(str(summary.get("status")))


def cmd_keys(ctx: Ctx) -> int:
    args = ctx.args
    adapters = local.adapters()
    if args.keys_command == "create":
        scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
        key, view = local.create_key(
            adapters, tenant=args.tenant, name=args.name, tier=args.tier, scopes=scopes
        )
        if args.save:
            path = ctx.config.path or cfg.default_path(os.environ)
            cfg.save(path, {"api_key": key, "tenant": args.tenant})
            ctx.note(f"saved the key and tenant to {path}")
        if ctx.json:
            print_json({"key": key, **view}, ctx.out)
        else:
            ctx.say(key)
            ctx.note(f"key {view['key_id']} for tenant {view['tenant']}; shown once, store it now")
        return EXIT_OK
    if args.keys_command == "list":
        keys = local.list_keys(adapters, args.tenant)
        if ctx.json:
            print_json({"keys": keys}, ctx.out)
            return EXIT_OK
        rows = [
            [
                k["key_id"],
                k["tenant"],
                k["name"],
                k["tier"],
                ",".join(k["scopes"]),
                "active" if k["active"] else "revoked",
            ]
            for k in keys
        ]
        for line in table(rows, ["KEY ID", "TENANT", "NAME", "TIER", "SCOPES", "STATE"]):
            ctx.say(line)
        return EXIT_OK
    view = local.revoke_key(adapters, args.key_id)
    if ctx.json:
        print_json(view, ctx.out)
    else:
        ctx.say(f"{view['key_id']} revoked")
    return EXIT_OK


def cmd_config(ctx: Ctx) -> int:
    c = ctx.config
    shown = {
        "api_url": c.api_url,
        "api_key": (c.api_key[:12] + "…") if c.api_key else None,
        "tenant": c.tenant,
        "config_file": str(c.path) if c.path else None,
        "sources": c.sources,
    }
    if ctx.json:
        print_json(shown, ctx.out)
    else:
        for key in ("api_url", "api_key", "tenant"):
            ctx.say(
                f"{key:>8}  {shown[key] or '-'}  {ctx.style('(' + c.sources[key] + ')', 'dim')}"
            )
        ctx.say(f"{'file':>8}  {shown['config_file']}")
    return EXIT_OK


# ---- entry point -------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    tokens = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_command_line(parser, tokens)
    except ArgumentsError as exc:
        # The options are not known yet: --json is looked for among the raw words.
        return report_error(err, str(exc), EXIT_USAGE, as_json=_wants_json(tokens), usage=exc.usage)
    except SystemExit as exc:  # --help printed and exited
        return int(exc.code or 0) and EXIT_USAGE
    color = not args.no_color and out.isatty() and not os.environ.get("NO_COLOR")
    style = Style(color)
    try:
        config = cfg.resolve(
            {"api_url": args.api_url, "api_key": args.api_key},
            os.environ,
            config_path=args.config,
            devstack=cfg.devstack_env(),
        )
    except cfg.ConfigError as exc:
        return report_error(err, str(exc), EXIT_USAGE, as_json=bool(args.json), style=style)
    ctx = Ctx(args, config, style, out, err)
    commands: dict[str, Callable[[], int]] = {
        "dev": lambda: cmd_dev(ctx),
        "submit": lambda: cmd_submit(ctx, stdin),
        "status": lambda: cmd_status(ctx),
        "list": lambda: cmd_list(ctx),
        "watch": lambda: cmd_watch(ctx),
        "cancel": lambda: cmd_cancel(ctx),
        "events": lambda: cmd_events(ctx),
        "artifacts": lambda: cmd_artifacts(ctx),
        "publish": lambda: cmd_publish(ctx, stdin),
        "upload": lambda: cmd_upload(ctx),
        "keys": lambda: cmd_keys(ctx),
        "config": lambda: cmd_config(ctx),
    }
    try:
        return commands[args.command]()
    except UsageError as exc:
        return ctx.fail(str(exc), EXIT_USAGE)
    except ClientError as exc:
        return report(ctx, exc, hint_for(exc, config.api_url, config.sources.get("api_url", "")))
    except KeyboardInterrupt:
        if not ctx.json:
            err.write("\n")  # off the line the terminal echoed ^C on
        return ctx.fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # the CLI's last line: a message, never a traceback
        return report_other(ctx, exc)


def parse_command_line(parser: argparse.ArgumentParser, tokens: list[str]) -> argparse.Namespace:
    """Parse `tokens`; for `dev`, the options codex-cloud does not know go to devstack."""
    args, extras = parser.parse_known_args(tokens)
    if args.command == "dev":
        if "--" in extras:  # `dev -- --json`: the `--` only stopped codex-cloud reading on
            extras.remove("--")
        args.devstack_args = extras
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _wants_json(tokens: Sequence[str]) -> bool:
    head = tokens[: tokens.index("--")] if "--" in tokens else tokens
    return "--json" in head


def report(ctx: Ctx, exc: ClientError, hint: str | None) -> int:
    # The API's problem+json body, when it sent one, is the JSON error as is.
    body: dict[str, Any] | None = getattr(exc, "body", None)
    return ctx.fail(describe(exc), exit_for_error(exc), hint=hint, body=body)


def report_other(ctx: Ctx, exc: Exception) -> int:
    """Errors from the Google clients and the project's own errors, as one helpful line."""
    from shared.errors import CodexCloudError, InvalidInput, NotFound, RetryableError

    if isinstance(exc, InvalidInput):
        return ctx.fail(exc.detail, EXIT_USAGE)
    if isinstance(exc, NotFound):
        return ctx.fail(exc.detail, EXIT_NOT_FOUND_OR_AUTH)
    if isinstance(exc, RetryableError) or type(exc).__module__.startswith("google."):
        return ctx.fail(
            f"Google Cloud is unreachable ({type(exc).__name__})",
            EXIT_UNAVAILABLE,
            hint="is the local stack running? try `make dev` (its emulators are found through "
            ".devstack/env.sh), or set GOOGLE_CLOUD_PROJECT and credentials for a real project",
        )
    if isinstance(exc, CodexCloudError):
        return ctx.fail(exc.detail, EXIT_FAILED)
    if isinstance(exc, OSError):
        return ctx.fail(str(exc), EXIT_FAILED)
    return ctx.fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)


__all__ = ["EXIT_OK", "main", "parse_duration_ms"]
