"""Rendering codex events for people (no network)."""

from __future__ import annotations

from codex_cloud.models import Event, Job
from codex_cloud.render import PLAIN, Style, diff_lines, event_lines, outcome_lines, table


def _event(message_type: str, **data: object) -> Event:
    return Event.from_json({"message_type": message_type, "data": data, "job_id": "j", "seq": 1})


def test_commands_show_the_command_then_the_exit_code_and_output() -> None:
    started = _event("progress", event="item.started", item_type="command_execution", command="ls")
    assert event_lines(started) == ["$ ls"]
    done = _event(
        "output",
        event="item.completed",
        item_type="command_execution",
        command="ls",
        exit_code=2,
        output="a\nb\nc\nd\ne\nf\n",
    )
    lines = event_lines(done)
    assert lines[0] == "  exit 2"
    assert lines[1:3] == ["  │ a", "  │ b"]
    assert lines[-1] == "  │ … 2 more lines"


def test_file_changes_are_relative_to_the_workspace() -> None:
    event = _event(
        "progress",
        event="item.completed",
        item_type="file_change",
        changes=[
            {"path": "/tmp/x/workspaces/j-1/workspace/src/a.py", "kind": "add"},
            {"path": "b.py", "kind": "delete"},
        ],
    )
    assert event_lines(event) == ["+ src/a.py", "- b.py"]


def test_messages_statuses_and_errors() -> None:
    message = _event("output", event="item.completed", item_type="agent_message", text="hi\nthere")
    assert event_lines(message) == ["» hi", "  there"]
    assert event_lines(_event("progress", status="running", worker="worker-1")) == [
        "→ running on worker-1"
    ]
    final = _event("complete", status="failed", reason="boom")
    assert final.is_final
    assert event_lines(final) == ["■ failed: boom"]
    assert event_lines(_event("error", message="retrying", fatal=False)) == ["! retrying"]
    assert event_lines(_event("heartbeat", elapsed_s=1)) == []
    partial = _event("progress", event="item.started", item_type="agent_message")
    assert event_lines(partial) == []
    turn = _event("complete", event="turn.completed", usage={"input_tokens": 5, "output_tokens": 2})
    assert not turn.is_final
    assert event_lines(turn) == ["· turn completed (5 in / 2 out)"]


def test_colour_only_when_asked() -> None:
    assert "\x1b[" in Style(True)("x", "red")
    assert Style(False)("x", "red") == "x"


def test_outcome_diff_and_table() -> None:
    job = Job.from_json(
        {
            "job_id": "j1",
            "status": "succeeded",
            "execution_time_ms": 1500,
            "result": {"final_message": "done"},
        }
    )
    assert outcome_lines(job, PLAIN) == ["job j1 succeeded in 1.5s", "", "done"]
    assert diff_lines("+++ b/x\n+a\n-b\n@@ -1 +1 @@\n ctx\n") == [
        "+++ b/x",
        "+a",
        "-b",
        "@@ -1 +1 @@",
        " ctx",
    ]
    assert table([["a", "bb"]], ["X", "Y"]) == ["X  Y", "-  --", "a  bb"]
