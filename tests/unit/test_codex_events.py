"""Mapping codex JSONL records to streaming messages (captured sample stream)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.codex.events import bounded_record, heartbeat, invalid_line, map_event
from worker.codex.process import _structured

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[1] / "codex" / "data" / "codex-exec-sample-events.jsonl"


def sample_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def test_sample_stream_maps_to_progress_output_and_complete() -> None:
    mapped = [map_event(r) for r in sample_records()]

    assert [m.message_type for m in mapped] == [
        "progress",  # thread.started
        "progress",  # turn.started
        "progress",  # reasoning item
        "progress",  # file_change started
        "progress",  # file_change completed
        "progress",  # command started
        "output",  # command completed (exit 2 is the agent's business, not a job error)
        "progress",
        "progress",
        "output",  # agent_message
        "complete",  # turn.completed
    ]
    assert mapped[0].data == {
        "event": "thread.started",
        "thread_id": "01a22c5b-da27-7be2-9607-d5d90ad54845",
    }
    assert mapped[6].data["exit_code"] == 2
    assert mapped[6].data["output"].startswith("hello\nls: cannot access")
    assert mapped[4].data["changes"] == [{"path": "/workspace/job/hello.py", "kind": "add"}]
    assert mapped[9].data["text"] == "Done: hello.py created, run, and updated."
    assert mapped[10].data["usage"]["input_tokens"] == 400
    # The raw record always travels along, unchanged.
    assert [m.codex for m in mapped] == sample_records()


def test_failures_map_to_error_with_fatality() -> None:
    failed = map_event({"type": "turn.failed", "error": {"message": "stream closed"}})
    retry = map_event({"type": "error", "message": "Reconnecting... 1/1"})
    item_error = map_event(
        {"type": "item.completed", "item": {"id": "item_9", "type": "error", "message": "warn"}}
    )

    assert (failed.message_type, failed.data["fatal"], failed.data["message"]) == (
        "error",
        True,
        "stream closed",
    )
    assert (retry.message_type, retry.data["fatal"]) == ("error", False)
    assert (item_error.message_type, item_error.data["message"]) == ("error", "warn")


def test_unknown_and_synthetic_records() -> None:
    assert map_event({"type": "something.new", "x": 1}).message_type == "progress"
    bad = map_event(invalid_line("not json at all"))
    assert bad.message_type == "error"
    assert bad.data["message"] == "not json at all"
    beat = heartbeat(12.3456, 7)
    assert beat.message_type == "heartbeat"
    assert beat.data["elapsed_s"] == 12.346
    assert beat.data["event_count"] == 7


def test_long_outputs_are_clipped_in_the_summary_only() -> None:
    text = "x" * 50_000
    record = {
        "type": "item.completed",
        "item": {"id": "i", "type": "agent_message", "text": text},
    }
    mapped = map_event(record)
    assert len(mapped.data["text"]) < 17_000
    assert mapped.data["text"].endswith("more chars]")
    assert mapped.codex["item"]["text"] == text
    assert mapped.as_dict()["message_type"] == "output"


def test_stored_records_keep_small_ones_whole_and_bound_large_ones() -> None:
    small = {"type": "item.completed", "item": {"id": "i", "text": "hello", "n": [1, 2]}}
    assert bounded_record(small) == small
    clipped = bounded_record({"type": "item.completed", "item": {"out": "z" * 50_000}})
    assert len(clipped["item"]["out"]) < 8_100
    assert clipped["item"]["out"].endswith("more chars]")
    # Many medium strings: clipped one by one it is still too large, so it becomes a stub.
    wide = {"type": "item.updated", "item": {f"k{i}": "w" * 7_000 for i in range(10)}}
    stub = bounded_record(wide)
    assert stub["type"] == "item.updated"
    assert stub["truncated"] is True
    assert len(json.dumps(stub)) < 300


def test_a_record_nested_too_deeply_to_walk_is_stored_as_a_stub() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5_000):
        inner["x"] = {}
        inner = inner["x"]
    stub = bounded_record({"type": "item.completed", "item": deep})
    assert stub["type"] == "item.completed"
    assert stub["truncated"] is True


def test_a_final_message_nested_too_deeply_is_a_structured_output_error() -> None:
    schema = {"type": "array"}
    value, error = _structured("[" * 100_000 + "]" * 100_000, schema)
    assert value is None
    assert error == "final message is JSON nested too deeply"
    value, error = _structured("[[1]]", schema)
    assert (value, error) == ([[1]], None)
