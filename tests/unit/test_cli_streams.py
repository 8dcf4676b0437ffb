"""What the CLI writes where (no network): results on stdout, progress and errors on stderr,
errors as JSON under --json, and `dev` options reaching devstack."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from codex_cloud import cli, local
from codex_cloud.cli import main
from codex_cloud.cli_output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from codex_cloud.client import Client


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODEX_CLOUD_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NO_COLOR", "1")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# ---- dev ------------------------------------------------------------------------------------


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append(list(argv)))
    return calls


@pytest.mark.parametrize(
    ("argv", "forwarded"),
    [
        (["dev", "--workers", "3"], ["--workers", "3"]),
        (
            ["dev", "--workers", "3", "--no-model", "--state-dir", "/x"],
            ["--workers", "3", "--no-model", "--state-dir", "/x"],
        ),
        (["dev", "--", "--slots", "4"], ["--slots", "4"]),
        # After `--` even a codex-cloud option name goes to devstack.
        (["--no-color", "dev", "--workers", "1", "--", "--json"], ["--workers", "1", "--json"]),
        (["dev"], []),
    ],
)
def test_dev_passes_its_options_to_devstack(
    execs: list[list[str]], argv: list[str], forwarded: list[str]
) -> None:
    code, _, err = run(*argv)
    assert (code, err) == (EXIT_OK, "")
    assert execs == [[sys.executable, "-m", "devstack", *forwarded]]


def test_other_commands_still_refuse_unknown_options(execs: list[list[str]]) -> None:
    code, _, err = run("list", "--workers", "3")
    assert code == EXIT_USAGE
    assert "usage: codex-cloud" in err
    assert "error: unrecognized arguments: --workers 3" in err
    assert execs == []


# ---- errors ---------------------------------------------------------------------------------


def _json_error(err: str) -> dict[str, Any]:
    lines = err.splitlines()
    assert len(lines) == 1, err  # one JSON object, nothing else
    payload: dict[str, Any] = json.loads(lines[0])
    return payload


def test_usage_errors_are_json_under_json() -> None:
    code, out, err = run("--json", "submit", "--timeout", "soon", "x")
    assert (code, out) == (EXIT_USAGE, "")
    payload = _json_error(err)
    assert payload["exit_code"] == EXIT_USAGE
    assert "not a duration" in payload["error"]["detail"]

    code, _, err = run("submit", "--ref", "main", "--api-url", "http://127.0.0.1:9", "p", "--json")
    assert code == EXIT_USAGE
    assert _json_error(err)["error"]["detail"] == "--ref needs --git"

    code, _, err = run("nope", "--json")
    assert code == EXIT_USAGE
    assert "invalid choice: 'nope'" in _json_error(err)["error"]["detail"]


def test_config_errors_are_json_under_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("api_url = [unclosed\n")
    code, _, err = run("config", "--config", str(bad), "--json")
    assert code == EXIT_USAGE
    assert str(bad) in _json_error(err)["error"]["detail"]
    code, _, err = run("config", "--config", str(bad))
    assert code == EXIT_USAGE
    assert err.startswith(f"error: {bad}")


def test_other_failures_are_json_under_json(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(local, "adapters", unreachable)
    code, _, err = run("keys", "list", "--json")
    assert code == EXIT_FAILED
    assert _json_error(err) == {"error": {"detail": "disk on fire"}, "exit_code": EXIT_FAILED}
    code, _, err = run("keys", "list")
    assert (code, err) == (EXIT_FAILED, "error: disk on fire\n")

    from shared.errors import RetryableError

    def down() -> None:
        raise RetryableError("emulator down")

    monkeypatch.setattr(local, "adapters", down)
    code, _, err = run("keys", "list", "--json")
    payload = _json_error(err)
    assert code == payload["exit_code"] == EXIT_UNAVAILABLE
    assert "make dev" in payload["hint"]


def test_interrupt_is_json_under_json(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "adapters", interrupted)
    code, _, err = run("keys", "list", "--json")
    assert code == EXIT_INTERRUPTED
    assert _json_error(err)["error"]["detail"] == "interrupted"


def test_api_errors_keep_the_problem_body_under_json(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = {"title": "Not found", "status": 404, "detail": "no job j9", "code": "not-found"}
    _serve(monkeypatch, lambda request: httpx.Response(404, json=problem))
    code, out, err = run("status", "j9", "--json")
    assert (code, out) == (5, "")
    assert _json_error(err)["error"] == problem


# ---- where a followed job's output goes -----------------------------------------------------


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"id: {e['seq']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


EVENTS = _sse(
    {"seq": 0, "message_type": "progress", "data": {"status": "running", "worker": "w1"}},
    {
        "seq": 1,
        "message_type": "progress",
        "data": {"event": "item.started", "item_type": "command_execution", "command": "ls"},
    },
    {
        "seq": 2,
        "message_type": "output",
        "data": {"event": "item.completed", "item_type": "agent_message", "text": "listed it"},
    },
    {"seq": 3, "message_type": "complete", "data": {"status": "succeeded"}},
)
JOB = {
    "job_id": "j1",
    "status": "succeeded",
    "result": {"final_message": "All done.", "artifacts": {"diff.patch": "gs://r/j1/diff.patch"}},
}
PATCH = "--- a/x.py\n+++ b/x.py\n@@ -0,0 +1 @@\n+print('x')\n"


def _serve(monkeypatch: pytest.MonkeyPatch, handler: Any) -> None:
    transport = httpx.MockTransport(handler)
    monkeypatch.setattr(
        cli, "Client", lambda url, key: Client(url, key, transport=transport, sleep=lambda s: None)
    )


def _job_api(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/v2/jobs/j1/events":
        return httpx.Response(200, content=EVENTS, headers={"content-type": "text/event-stream"})
    if path == "/v2/jobs/j1":
        return httpx.Response(200, json=JOB)
    if path == "/v2/jobs/j1/artifacts/diff.patch":
        return httpx.Response(200, text=PATCH)
    return httpx.Response(404, json={"detail": path})


def test_followed_job_events_go_to_stderr_and_results_to_stdout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _serve(monkeypatch, _job_api)
    code, out, err = run("watch", "j1")
    assert code == EXIT_OK
    # Live progress: stderr only, so `watch j1 > out.txt` keeps just the results.
    for live in ("→ running on w1", "$ ls", "» listed it"):
        assert live in err
        assert live not in out
    assert "All done." in out
    assert "+print('x')" in out
    assert "All done." not in err
