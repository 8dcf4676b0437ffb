"""Pure mapping from one `codex exec --json` record to the service's streaming message types."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MessageType = Literal["progress", "output", "error", "complete", "heartbeat"]

# Synthetic record types the runner itself produces (never emitted by codex).
INVALID_LINE_TYPE = "runner.invalid_line"
HEARTBEAT_TYPE = "runner.heartbeat"

_TEXT_LIMIT = 2000
_OUTPUT_LIMIT = 16_000
# The raw record stored with each event: strings clipped to this many characters, and a record
# still larger than RAW_RECORD_MAX_BYTES as JSON is replaced by a stub. A command's output can
# be megabytes, past Firestore's 1 MiB document limit; a batch of events must also stay under
# its 10 MiB request limit. The events.jsonl artifact keeps every record whole.
RAW_STRING_LIMIT = 8_000
RAW_RECORD_MAX_BYTES = 24_000


@dataclass(frozen=True)
class StreamMessage:
    message_type: MessageType
    data: dict[str, Any]
    codex: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"message_type": self.message_type, "data": self.data, "codex": self.codex}


def _clip(text: Any, limit: int = _TEXT_LIMIT) -> str:
    s = text if isinstance(text, str) else ("" if text is None else str(text))
    return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit} more chars]"


def bounded_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """`record` as stored with its event: long strings clipped, an oversized record stubbed."""
    try:
        clipped = {k: _clip_strings(v) for k, v in record.items()}
        if len(json.dumps(clipped, default=str)) <= RAW_RECORD_MAX_BYTES:
            return clipped
    except RecursionError:
        pass  # nested deeper than the walk can follow: stubbed like an oversized record
    return {
        "type": record.get("type"),
        "truncated": True,
        "note": "record too large to store with the event; see the events.jsonl artifact",
    }


def _clip_strings(value: Any) -> Any:
    # Codex records are a few levels deep; a pathological one ends in RecursionError.
    if isinstance(value, str):
        return _clip(value, RAW_STRING_LIMIT)
    if isinstance(value, Mapping):
        return {k: _clip_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_strings(v) for v in value]
    return value


def _item_summary(item: Mapping[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    summary: dict[str, Any] = {"item_id": item.get("id"), "item_type": kind}
    if "status" in item:
        summary["status"] = item.get("status")
    if kind == "command_execution":
        summary["command"] = _clip(item.get("command"))
        summary["exit_code"] = item.get("exit_code")
    elif kind == "file_change":
        summary["changes"] = [
            {"path": c.get("path"), "kind": c.get("kind")}
            for c in item.get("changes", [])
            if isinstance(c, Mapping)
        ]
    elif kind in ("agent_message", "reasoning"):
        summary["text"] = _clip(item.get("text"))
    elif kind == "error":
        summary["message"] = _clip(item.get("message"))
    else:
        # Unknown/new item types (todo_list, mcp_tool_call, web_search...): keep the type only.
        pass
    return summary


def map_event(record: Mapping[str, Any]) -> StreamMessage:
    """Classify a record; unknown types become `progress` so new codex events never break us."""
    raw = dict(record)
    kind = record.get("type")
    if kind == "thread.started":
        return StreamMessage("progress", {"event": kind, "thread_id": record.get("thread_id")}, raw)
    if kind == "turn.started":
        return StreamMessage("progress", {"event": kind}, raw)
    if kind == "turn.completed":
        usage = record.get("usage")
        return StreamMessage(
            "complete",
            {"event": kind, "usage": dict(usage) if isinstance(usage, Mapping) else {}},
            raw,
        )
    if kind == "turn.failed":
        err = record.get("error")
        message = err.get("message") if isinstance(err, Mapping) else err
        return StreamMessage(
            "error", {"event": kind, "message": _clip(message), "fatal": True}, raw
        )
    if kind == "error":
        # Top-level errors are retry notices ("Reconnecting... 1/1") as well as the fatal one;
        # only turn.failed/exit status decide the outcome.
        return StreamMessage(
            "error", {"event": kind, "message": _clip(record.get("message")), "fatal": False}, raw
        )
    if kind == INVALID_LINE_TYPE:
        return StreamMessage(
            "error", {"event": kind, "message": _clip(record.get("line")), "fatal": False}, raw
        )
    if kind == HEARTBEAT_TYPE:
        return StreamMessage("heartbeat", {"event": kind, **_heartbeat_data(record)}, raw)
    if kind in ("item.started", "item.updated", "item.completed"):
        item = record.get("item")
        if not isinstance(item, Mapping):
            return StreamMessage("progress", {"event": kind}, raw)
        return _map_item(str(kind), item, raw)
    return StreamMessage("progress", {"event": kind}, raw)


def _map_item(kind: str, item: Mapping[str, Any], raw: dict[str, Any]) -> StreamMessage:
    data = {"event": kind, **_item_summary(item)}
    item_type = item.get("type")
    completed = kind == "item.completed"
    if item_type == "error" or (
        completed and item.get("status") == "failed" and item_type != "command_execution"
    ):
        data["fatal"] = False
        return StreamMessage("error", data, raw)
    if completed and item_type == "agent_message":
        data["text"] = _clip(item.get("text"), _OUTPUT_LIMIT)
        return StreamMessage("output", data, raw)
    if completed and item_type == "command_execution":
        # A failing agent command is normal work (the agent reads the error), not a job error.
        data["output"] = _clip(item.get("aggregated_output"), _OUTPUT_LIMIT)
        return StreamMessage("output", data, raw)
    return StreamMessage("progress", data, raw)


def _heartbeat_data(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("elapsed_s", "event_count", "at") if k in record}


def heartbeat(elapsed_s: float, event_count: int) -> StreamMessage:
    """A runner-level liveness message (codex can be silent for minutes inside a command)."""
    record = {
        "type": HEARTBEAT_TYPE,
        "elapsed_s": round(elapsed_s, 3),
        "event_count": event_count,
        "at": time.time(),
    }
    return map_event(record)


def invalid_line(line: str) -> dict[str, Any]:
    """The synthetic record that replaces a stdout line that is not a JSON object."""
    return {"type": INVALID_LINE_TYPE, "line": _clip(line)}
