"""Human-readable lines for job events, outcomes and diffs (pure: no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codex_cloud.models import Event, Job

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
_STATUS_COLOR = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "timed_out": "red",
    "running": "cyan",
    "queued": "dim",
    "dispatched": "dim",
}
_CHANGE_MARK = {"add": "+", "update": "~", "delete": "-"}
MAX_OUTPUT_LINES = 4
MAX_MESSAGE_LINES = 12


@dataclass(frozen=True)
class Style:
    color: bool = False

    def __call__(self, text: str, *names: str) -> str:
        if not self.color or not names:
            return text
        codes = ";".join(_CODES[n] for n in names if n in _CODES)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def status(self, status: str) -> str:
        return self(status, _STATUS_COLOR.get(status, "bold"))


PLAIN = Style(False)


def _clip_lines(text: str, limit: int) -> list[str]:
    lines = text.rstrip("\n").splitlines() or [""]
    if len(lines) > limit:
        lines = [*lines[:limit], f"… {len(lines) - limit} more lines"]
    return lines


def event_lines(event: Event, style: Style = PLAIN) -> list[str]:
    """What a person wants to see for one event; [] for noise (heartbeats, partial items)."""
    data = event.data
    kind = data.get("event")
    if event.is_heartbeat:
        return []
    if kind is None and "status" in data:
        return _status_lines(data, style, final=event.is_final)
    if event.message_type == "error":
        message = str(data.get("message") or data.get("code") or "error")
        fatal = data.get("fatal", True)
        return [style(f"! {message}", "red" if fatal else "yellow")]
    if kind == "thread.started":
        return [style(f"· thread {data.get('thread_id')}", "dim")]
    if kind == "turn.started":
        return [style("· turn started", "dim")]
    if kind == "turn.completed":
        usage: dict[str, Any] = data.get("usage") or {}
        tokens = ""
        if usage:
            tokens = f" ({usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out)"
        return [style(f"· turn completed{tokens}", "dim")]
    item = data.get("item_type")
    if item == "command_execution":
        command = str(data.get("command") or "")
        if kind == "item.started":
            return [style("$ ", "cyan", "bold") + command]
        if kind == "item.completed":
            code = data.get("exit_code")
            mark = style(f"exit {code}", "green" if code == 0 else "red")
            lines = [f"  {mark}"]
            output = str(data.get("output") or "")
            if output.strip():
                lines += [
                    style(f"  │ {line}", "dim") for line in _clip_lines(output, MAX_OUTPUT_LINES)
                ]
            return lines
        return []
    if item == "file_change" and kind == "item.completed":
        changes = data.get("changes") or []
        return [
            style(
                f"{_CHANGE_MARK.get(str(c.get('kind')), '~')} {short_path(c.get('path'))}",
                "magenta",
            )
            for c in changes
            if isinstance(c, dict)
        ]
    if item == "agent_message" and kind == "item.completed":
        text = str(data.get("text") or "")
        lines = _clip_lines(text, MAX_MESSAGE_LINES)
        return [style("» ", "blue", "bold") + lines[0], *[f"  {line}" for line in lines[1:]]]
    if item == "reasoning" and kind == "item.completed":
        first = _clip_lines(str(data.get("text") or ""), 1)[0]
        return [style(f"… {first}", "dim")]
    return []


def short_path(path: Any) -> str:
    """Codex reports absolute paths inside the job's workspace; show them relative to it."""
    text = str(path)
    marker = "/workspace/"
    return text.split(marker, 1)[1] if marker in text else text


def _status_lines(data: dict[str, Any], style: Style, *, final: bool) -> list[str]:
    status = str(data.get("status"))
    where = f" on {data['worker']}" if data.get("worker") else ""
    reason = f": {data['reason']}" if data.get("reason") and status != "succeeded" else ""
    arrow = "■" if final else "→"
    return [style(f"{arrow} ", "bold") + style.status(status) + where + reason]


def outcome_lines(job: Job, style: Style = PLAIN) -> list[str]:
    """The closing summary: status, time, final message, error."""
    took = f" in {job.execution_time_ms / 1000:.1f}s" if job.execution_time_ms else ""
    lines = [f"{style('job', 'bold')} {job.job_id} {style.status(job.status)}{took}"]
    if job.error_message:
        lines.append(style(f"error: {job.error_message}", "red"))
    if job.final_message:
        lines.append("")
        lines += job.final_message.rstrip().splitlines()
    return lines


def diff_lines(patch: str, style: Style = PLAIN) -> list[str]:
    out = []
    for line in patch.rstrip("\n").splitlines():
        if line.startswith(("+++", "---", "diff ", "index ")):
            out.append(style(line, "bold"))
        elif line.startswith("+"):
            out.append(style(line, "green"))
        elif line.startswith("-"):
            out.append(style(line, "red"))
        elif line.startswith("@@"):
            out.append(style(line, "cyan"))
        else:
            out.append(line)
    return out


def table(rows: list[list[str]], headers: list[str]) -> list[str]:
    """A plain left-aligned text table (cells must not contain ANSI codes)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers).rstrip(), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row).rstrip() for row in rows]
    return lines
