"""The runner against the real codex binary and the scripted model server (offline)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.ports import free_port
from modelserver import ModelServer
from tests.codex.conftest import CodexJob, live_processes_with_env
from worker.codex.env import ApiKey
from worker.codex.events import map_event
from worker.codex.process import process_group_exists, run_codex
from worker.codex.sessions import find_rollout_files, pack_session_state, unpack_session_state
from worker.codex.workspace import archive_changed, diff, snapshot

pytestmark = [pytest.mark.codex, pytest.mark.timeout(60)]

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "files"],
    "additionalProperties": False,
}


def assert_no_leftovers(job: CodexJob, pid: int | None) -> None:
    assert pid is not None
    assert not process_group_exists(pid), "codex's process group survived"
    assert job.home is not None
    # Agent commands get HOME=<job home>; nothing carrying it may still run.
    assert live_processes_with_env(f"HOME={job.home.home}") == []


def test_hello_writes_file_runs_it_and_reports(make_job: Any, model_server: ModelServer) -> None:
    job: CodexJob = make_job()
    before = snapshot(job.workdir)

    outcome = job.run("[[script:hello]] create hello.py and run it")

    assert outcome.status == "succeeded", outcome.error
    assert outcome.exit_code == 0
    assert outcome.final_message == "Created hello.py; running it printed: hello from codex-cloud"
    assert outcome.usage is not None
    assert outcome.usage["input_tokens"] > 0
    assert outcome.usage["output_tokens"] > 0
    assert outcome.thread_id
    assert (job.workdir / "hello.py").read_text() == 'print("hello from codex-cloud")\n'

    types = job.event_types()
    assert types[0] == "thread.started"
    assert types[1] == "turn.started"
    assert types[-1] == "turn.completed"
    assert outcome.event_count == len(types)
    assert [c["path"] for fc in job.items("file_change") for c in fc["changes"]] == [
        str(job.workdir / "hello.py")
    ]
    (command,) = job.items("command_execution")
    assert command["exit_code"] == 0
    assert command["aggregated_output"] == "hello from codex-cloud\n"
    messages = [map_event(e).message_type for e in job.events]
    assert messages[0] == "progress"
    assert messages[-1] == "complete"
    assert "output" in messages
    assert "error" not in messages

    changes = diff(before, job.workdir)
    assert [(c.path, c.kind) for c in changes.changes] == [("hello.py", "added")]
    assert '+print("hello from codex-cloud")' in changes.patch
    with tarfile.open(fileobj=io.BytesIO(archive_changed(job.workdir, changes.changes))) as tar:
        assert tar.getnames() == ["hello.py"]
    assert model_server.request_count("hello") == 3
    assert_no_leftovers(job, outcome.pid)


def test_failing_agent_command_still_succeeds(make_job: Any) -> None:
    job: CodexJob = make_job()

    outcome = job.run("[[script:failing-command]] list a missing directory")

    assert outcome.status == "succeeded", outcome.error
    (command,) = job.items("command_execution")
    assert command["exit_code"] == 2
    assert command["status"] == "failed"
    assert "No such file or directory" in command["aggregated_output"]
    assert "No such file or directory" in (outcome.final_message or "")
    mapped = map_event(job.events[job.event_types().index("item.completed")])
    assert mapped.message_type == "output"
    assert mapped.data["exit_code"] == 2


def test_timeout_kills_the_whole_process_tree(make_job: Any) -> None:
    job: CodexJob = make_job()

    started = time.monotonic()
    outcome = job.run("[[script:slow]] sleep for a long time", timeout_s=2.0, kill_grace_s=1.0)
    elapsed = time.monotonic() - started

    assert outcome.status == "timed_out"
    assert outcome.error == "codex run timed out after 2 s"
    assert elapsed < 2.0 + 1.0 + 2.0
    (started_cmd,) = job.items("command_execution", event="item.started")
    assert "sleep 30" in started_cmd["command"]
    assert outcome.leftover_pids_killed >= 1
    assert_no_leftovers(job, outcome.pid)


@pytest.mark.parametrize(
    ("sandbox_mode", "runner_kills"),
    [
        # The sandbox's PID namespace dies with the command: nothing is left for the runner.
        ("workspace-write", 0),
        # No sandbox: the detached `setsid sleep` outlives codex and only the sweep stops it.
        ("danger-full-access", 1),
    ],
)
def test_detached_background_process_does_not_outlive_the_run(
    make_job: Any, sandbox_mode: str, runner_kills: int
) -> None:
    job: CodexJob = make_job()
    job.sandbox_mode = sandbox_mode  # type: ignore[assignment]

    outcome = job.run("[[script:orphan]] leave something running")

    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_message == "left a background process behind: started"
    # Without a sandbox, codex's own session cleanup sometimes stops the detached process
    # before the runner's sweep does; either way nothing may outlive the run.
    assert outcome.leftover_pids_killed <= runner_kills
    assert_no_leftovers(job, outcome.pid)


def test_cancel_stops_the_run_within_two_seconds(make_job: Any) -> None:
    job: CodexJob = make_job()
    spec = job.spec("[[script:slow]] sleep, then get cancelled", timeout_s=30)
    cancel = asyncio.Event()
    cancelled_at: list[float] = []

    async def on_event(record: dict[str, Any]) -> None:
        job.events.append(record)
        if record.get("type") == "item.started" and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    outcome = asyncio.run(run_codex(spec, on_event, cancel))
    latency = time.monotonic() - cancelled_at[0]

    assert outcome.status == "cancelled"
    assert outcome.error == "codex run was cancelled"
    assert latency < 2.0
    assert_no_leftovers(job, outcome.pid)


def test_cancelling_the_calling_task_still_kills_the_tree(make_job: Any) -> None:
    job: CodexJob = make_job()
    spec = job.spec("[[script:slow]] sleep, then the caller gives up", timeout_s=30)

    async def caller() -> None:
        await asyncio.wait_for(run_codex(spec, job.events.append, asyncio.Event()), timeout=1.0)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(caller())

    assert time.monotonic() - started < 1.0 + 2.0
    assert "item.started" in job.event_types()
    assert job.home is not None
    assert live_processes_with_env(f"HOME={job.home.home}") == []


def test_model_server_down_fails_quickly(make_job: Any) -> None:
    closed_port = free_port()  # nothing listens there
    job: CodexJob = make_job(base_url=f"http://127.0.0.1:{closed_port}/v1")

    started = time.monotonic()
    outcome = job.run("anything")

    assert outcome.status == "failed"
    assert time.monotonic() - started < 20
    assert outcome.error is not None
    assert "Connection failed" in outcome.error
    assert job.event_types()[-1] == "turn.failed"


def test_model_500_fails_after_bounded_retries(make_job: Any, model_server: ModelServer) -> None:
    job: CodexJob = make_job(request_max_retries=1, stream_max_retries=1)

    started = time.monotonic()
    outcome = job.run("[[script:model-500]] fail please")

    assert outcome.status == "failed"
    assert outcome.exit_code == 1
    assert time.monotonic() - started < 20
    assert outcome.error
    # (1 + request_max_retries) x (1 + stream_max_retries) attempts, then the turn fails.
    assert model_server.request_count("model-500") == 4


def test_one_server_error_is_retried_and_the_run_succeeds(
    make_job: Any, model_server: ModelServer
) -> None:
    job: CodexJob = make_job()

    outcome = job.run("[[script:flaky]] recover")

    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_message == "Recovered after one server error."
    assert [r["outcome"] for r in model_server.requests()["requests"]] == [
        "http_error",
        "completed",
    ]


def test_silent_model_stream_fails_on_idle_timeout(
    make_job: Any, model_server: ModelServer
) -> None:
    job: CodexJob = make_job(stream_idle_timeout_ms=1000, stream_max_retries=0)

    started = time.monotonic()
    outcome = job.run("[[script:hang]] never answer")

    assert outcome.status == "failed"
    assert time.monotonic() - started < 10
    assert model_server.request_count("hang") >= 1


def test_agent_commands_never_see_runner_secrets(
    make_job: Any, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-secret-xyz",
        "GOOGLE_APPLICATION_CREDENTIALS": "/var/secrets/google/key.json",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8681",
        "CODEX_CLOUD_TOKEN_SIGNING_KEY": "signing-key-abc",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    provider_key = "sk-provider-only-for-codex-789"
    job: CodexJob = make_job(api_key_env_var="CODEX_PROVIDER_API_KEY")
    job.api_key = ApiKey("CODEX_PROVIDER_API_KEY", provider_key)
    job.extra_env = {"JOB_LABEL": "visible-to-commands"}

    outcome = job.run("[[script:env]] show the environment")

    assert outcome.status == "succeeded", outcome.error
    (command,) = job.items("command_execution")
    output = command["aggregated_output"]
    assert f"HOME={job.home.home if job.home else ''}" in output
    assert "JOB_LABEL=visible-to-commands" in output
    for leaked in [*secrets, *secrets.values(), provider_key, "CODEX_PROVIDER_API_KEY"]:
        assert leaked not in output
        assert leaked not in (outcome.final_message or "")
    # codex itself did get the key: it authenticated every model request with it...
    requests = model_server.requests()["requests"]
    assert requests
    assert all(r["headers"]["authorization"] == f"Bearer {provider_key}" for r in requests)
    # ...and nothing secret went to the model inside prompts or tool outputs.
    for request in requests:
        for leaked in [*secrets.values(), provider_key]:
            assert leaked not in request["body"]


def test_a_checkout_around_the_job_is_invisible_to_codex_and_the_agent(
    make_job: Any, model_server: ModelServer, tmp_path: Path
) -> None:
    # The job directory lies inside someone else's repository, with its own AGENTS.md.
    marker = "never-follow-the-outer-agents-file-4711"
    (tmp_path / "AGENTS.md").write_text(f"Instructions: {marker}\n")
    git = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **git)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "AGENTS.md"], **git)  # type: ignore[call-overload]
    job: CodexJob = make_job()
    # The workspace's own AGENTS.md is still the project's guidance.
    (job.workdir / "AGENTS.md").write_text("Instructions: follow-the-workspace-file-0815\n")

    outcome = job.run("[[script:git-toplevel]] which repository is this?")

    assert outcome.status == "succeeded", outcome.error
    (command,) = job.items("command_execution")
    output = command["aggregated_output"]
    assert "not a git repository" in output
    assert str(tmp_path) not in output
    bodies = [r["body"] for r in model_server.requests()["requests"]]
    assert bodies
    assert all(marker not in body for body in bodies)
    assert all("follow-the-workspace-file-0815" in body for body in bodies)


@pytest.mark.parametrize("bundled", [False, True], ids=["default", "enabled"])
def test_bundled_skills_are_neither_installed_nor_offered_unless_enabled(
    make_job: Any, model_server: ModelServer, bundled: bool
) -> None:
    job: CodexJob = make_job()
    job.bundled_skills = bundled

    outcome = job.run("plain prompt without a script marker")

    assert outcome.status == "succeeded", outcome.error
    assert job.home is not None
    installed = (job.home.codex_home / "skills" / ".system").exists()
    (body,) = [r["body"] for r in model_server.requests()["requests"]]
    assert installed is bundled
    assert ("skill-installer" in body) is bundled


def test_no_authorization_header_without_a_key(make_job: Any, model_server: ModelServer) -> None:
    job: CodexJob = make_job()

    outcome = job.run("plain prompt without a script marker")

    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_message == "Done. Request was: plain prompt without a script marker"
    (request,) = model_server.requests()["requests"]
    assert "authorization" not in request["headers"]


def test_structured_output_is_parsed_and_validated(
    make_job: Any, model_server: ModelServer
) -> None:
    job: CodexJob = make_job()
    (job.workdir / "README.md").write_text("# demo\n")

    outcome = job.run("[[script:structured]] summarise", output_schema=SUMMARY_SCHEMA)

    assert outcome.status == "succeeded", outcome.error
    assert outcome.structured_output == {"summary": "listed the workspace", "files": ["README.md"]}
    # codex forwarded the schema to the model as the response format.
    body = json.loads(model_server.requests()["requests"][0]["body"])
    assert body["text"]["format"]["schema"]["required"] == ["summary", "files"]


def test_structured_output_not_matching_the_schema_fails(make_job: Any) -> None:
    job: CodexJob = make_job()

    outcome = job.run("[[script:structured-invalid]] summarise", output_schema=SUMMARY_SCHEMA)

    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "does not match the output schema" in outcome.error
    assert outcome.final_message == '{"summary": 42}'


def test_resume_continues_the_thread_from_another_codex_home(
    make_job: Any, model_server: ModelServer
) -> None:
    first: CodexJob = make_job("first")
    turn1 = first.run("[[script:followup]] start a note")
    assert turn1.status == "succeeded", turn1.error
    assert turn1.thread_id is not None
    assert first.home is not None
    assert find_rollout_files(first.home.codex_home, turn1.thread_id)
    blob = pack_session_state(first.home.codex_home, turn1.thread_id)

    # Another worker: fresh CODEX_HOME, the workspace restored at a different path.
    second: CodexJob = make_job("second")
    shutil.rmtree(second.workdir)
    shutil.copytree(first.workdir, second.workdir)
    home = second.prepare()
    restored = unpack_session_state(blob, home.codex_home)
    assert any(p.startswith("sessions/") for p in restored)
    shutil.rmtree(first.root)  # nothing of the first worker may be needed any more

    turn2 = second.run("append a second line", resume_thread_id=turn1.thread_id)

    assert turn2.status == "succeeded", turn2.error
    assert turn2.thread_id == turn1.thread_id
    assert (second.workdir / "note.txt").read_text() == "first turn\nsecond turn\n"
    assert turn2.final_message == (
        "Appended to note.txt, which now reads:\nfirst turn\nsecond turn"
    )
    last = model_server.requests()["requests"][-1]
    assert last["turn"] == 1
    assert last["user_messages"][-1] == "append a second line"


def test_strict_config_rejects_unknown_keys(make_job: Any) -> None:
    job: CodexJob = make_job()
    home = job.prepare()
    home.config_path.write_text('not_a_codex_setting = "x"\n' + home.config_path.read_text())

    outcome = job.run("anything")

    assert outcome.status == "failed"
    assert outcome.exit_code == 1
    assert outcome.error is not None
    assert "not_a_codex_setting" in outcome.error


def test_heartbeats_are_delivered_while_a_command_runs(make_job: Any) -> None:
    job: CodexJob = make_job()

    outcome = job.run("[[script:slow]] wait", timeout_s=1.5, heartbeat_interval_s=0.3)

    assert outcome.status == "timed_out"
    beats = [map_event(e) for e in job.events if e["type"] == "runner.heartbeat"]
    assert len(beats) >= 2
    assert all(b.message_type == "heartbeat" for b in beats)
    assert outcome.event_count == len(job.events) - len(beats)


def test_missing_binary_is_a_failed_outcome(make_job: Any, tmp_path: Path) -> None:
    job: CodexJob = make_job()

    outcome = job.run("anything", binary=tmp_path / "no-such-codex")

    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("cannot start codex")
    assert not os.path.exists(tmp_path / "no-such-codex")
