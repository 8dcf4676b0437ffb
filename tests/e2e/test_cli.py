"""The `codex-cloud` CLI as a user runs it: a subprocess with the local stack's environment,
`--json` output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import Stack

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "bin" / "codex-cloud"


@pytest.fixture
def cli_env(stack_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, **stack_env}
    env.pop("CODEX_CLOUD_API_KEY", None)
    env["CODEX_CLOUD_CONFIG"] = str(tmp_path / "config.toml")
    env["NO_COLOR"] = "1"
    return env


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codex_cloud", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=100,
        cwd=REPO,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def keyed(cli_env: dict[str, str]) -> dict[str, str]:
    created = cli(cli_env, "keys", "create", "--tenant", "cli", "--save", "--json")
    assert created.returncode == 0, created.stderr
    assert as_json(created)["key"].startswith("cck_")
    return cli_env


def test_submit_wait_status_list_events_artifacts(keyed: dict[str, str], tmp_path: Path) -> None:
    done = cli(
        keyed, "submit", "-", "--wait", "--json", "--priority", "high", stdin="[[script:hello]] hi"
    )
    assert done.returncode == 0, done.stderr
    job = as_json(done)
    assert job["status"] == "succeeded"
    job_id = job["job_id"]
    status = cli(keyed, "status", job_id, "--json")
    assert status.returncode == 0
    assert as_json(status)["request"]["priority"] == "high"
    listed = as_json(cli(keyed, "list", "--json", "--status", "succeeded"))
    assert job_id in [j["job_id"] for j in listed["jobs"]]
    events = cli(keyed, "events", job_id, "--json")
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert lines[-1]["message_type"] == "complete"
    assert lines[-1]["data"]["status"] == "succeeded"
    arts = as_json(cli(keyed, "artifacts", job_id, "--download", str(tmp_path / "a"), "--json"))
    assert "diff.patch" in [a["name"] for a in arts["artifacts"]]
    assert "+print(" in (tmp_path / "a" / "diff.patch").read_text()
    # The human view shows the live events (progress: stderr), the final message and the diff
    # (results: stdout).
    human = cli(keyed, "watch", job_id)
    assert human.returncode == 0
    assert "$ " in human.stderr
    assert "exit 0" in human.stderr
    assert "+ hello.py" in human.stderr
    assert "+ hello.py" not in human.stdout
    assert "+++ b/hello.py" in human.stdout


def test_outcomes_map_to_exit_codes(keyed: dict[str, str], tmp_path: Path) -> None:
    failed = cli(keyed, "submit", "[[script:model-500]] fail", "--wait", "--json")
    assert failed.returncode == 1, failed.stderr
    assert as_json(failed)["status"] == "failed"
    job_id = cli(keyed, "submit", "[[script:slow]] sleep").stdout.strip()
    cancel = cli(keyed, "cancel", job_id, "--json")
    assert cancel.returncode == 0
    watched = cli(keyed, "watch", job_id, "--json")
    assert watched.returncode == 3
    assert as_json(watched)["status"] == "cancelled"
    prompt = tmp_path / "p.txt"
    prompt.write_text("[[script:hello]] from a file")
    dir_ws = tmp_path / "ws"
    dir_ws.mkdir()
    (dir_ws / "README.md").write_text("a workspace\n")
    sync = cli(keyed, "submit", "-f", str(prompt), "--mode", "sync", "--dir", str(dir_ws), "--json")
    assert sync.returncode == 0, sync.stderr
    assert as_json(sync)["request"]["workspace"]["object"].startswith("_workspaces/cli/")


def test_helpful_errors_without_tracebacks(keyed: dict[str, str], tmp_path: Path) -> None:
    missing = cli(keyed, "status", "no-such-job")
    assert missing.returncode == 5
    assert "not found" in missing.stderr
    bad_key = cli(keyed, "list", "--api-key", "cck_bad_key")
    assert bad_key.returncode == 5
    assert "hint:" in bad_key.stderr
    no_key = cli({**keyed, "CODEX_CLOUD_CONFIG": str(tmp_path / "empty.toml")}, "list")
    assert no_key.returncode == 5
    assert "keys create" in no_key.stderr
    down = cli(keyed, "list", "--api-url", "http://127.0.0.1:9")
    assert down.returncode == 6
    assert "make dev" in down.stderr
    invalid = cli(keyed, "submit", "x", "--timeout", "10ms")
    assert invalid.returncode == 2
    assert "timeout_ms" in invalid.stderr
    usage = cli(keyed, "submit")
    assert usage.returncode == 2
    for result in (missing, bad_key, no_key, down, invalid, usage):
        assert "Traceback" not in result.stderr


def test_publish_and_upload_channels(keyed: dict[str, str]) -> None:
    published = cli(keyed, "publish", "[[script:hello]] via pubsub", "--wait", "--json")
    assert published.returncode == 0, published.stderr
    body = as_json(published)
    assert body["job"]["channel"] == "pubsub"
    assert body["job"]["status"] == "succeeded"
    uploaded = cli(keyed, "upload", "--prompt", "[[script:hello]] via upload", "--wait", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    summary = as_json(uploaded)["summary"]
    assert summary["status"] == "succeeded"
    assert summary["channel"] == "upload"
    assert summary["tenant"] == "cli"
    assert summary["results_object"].endswith(".result.json")


def test_stream_mode_and_wrapper_script(keyed: dict[str, str], stack: Stack) -> None:
    streamed = subprocess.run(
        [str(WRAPPER), "submit", "--mode", "stream", "[[script:followup]] note"],
        env=keyed,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert streamed.returncode == 0, streamed.stderr
    assert "over WebSocket" in streamed.stderr
    assert "Created note.txt." in streamed.stdout
    keys = as_json(cli(keyed, "keys", "list", "--tenant", "cli", "--json"))["keys"]
    revoked = as_json(cli(keyed, "keys", "revoke", keys[0]["key_id"], "--json"))
    assert revoked["active"] is False
