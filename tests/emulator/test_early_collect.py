"""Artifacts collected while codex exits (worker/early.py), against the real emulators: reused
when nothing changed after the turn, collected again when something wrote to the workspace
after the early diff, and the final message checked against what codex reported."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from shared.adapters import Adapters
from shared.models import Channel, JobRecord, JobRequest, JobStatus
from worker.codex.process import CodexOutcome
from worker.codex.workspace import Snapshot, snapshot
from worker.early import EarlyArtifacts, last_agent_message
from worker.jobrunner import JobRunner

EVENTS: list[dict[str, object]] = [
    {"type": "thread.started", "thread_id": "t-1"},
    {"type": "item.completed", "item": {"type": "agent_message", "text": "all done"}},
    {"type": "turn.completed", "usage": {"input_tokens": 1}},
]


def _job(adapters: Adapters) -> JobRecord:
    store = adapters.jobs
    job_id = store.create_job(JobRequest(prompt="p"), tenant="t1", channel=Channel.HTTP).job.job_id
    store.transition(job_id, JobStatus.DISPATCHED)
    return store.claim(job_id, worker_id="w1", lease_s=30)


def _outcome(final: str | None = "all done") -> CodexOutcome:
    return CodexOutcome(
        status="succeeded",
        exit_code=0,
        thread_id=None,  # no session state to pack here
        final_message=final,
        usage=None,
        structured_output=None,
        error=None,
        duration_s=0.1,
        stderr_tail=(),
        event_count=len(EVENTS),
    )


def _generations(adapters: Adapters, job: JobRecord) -> dict[str, int | None]:
    bucket = adapters.settings.topology.bucket("outputs")
    found = {}
    for name in ("events.jsonl", "final-message.txt", "diff.patch", "changes.tar.gz"):
        info = adapters.storage.stat(bucket, f"{job.job_id}/{name}")
        found[name] = info.generation if info else None
    return found


@dataclass
class _Turn:
    """A job whose turn wrote hello.py, with what was collected early."""

    runner: JobRunner
    job: JobRecord
    root: Path
    workdir: Path
    before: Snapshot
    early: EarlyArtifacts
    uploaded: dict[str, int | None]


def _completed_turn(adapters: Adapters, tmp_path: Path) -> _Turn:
    runner = JobRunner(adapters, Path("/bin/true"), "w1")
    job = _job(adapters)
    root = tmp_path / "job"
    workdir = root / "workspace"
    workdir.mkdir(parents=True)
    (workdir / "keep.txt").write_text("unchanged\n")
    before = snapshot(workdir)
    (workdir / "hello.py").write_text("print('hi')\n")
    early = runner._collect_early(job, root, workdir, before, list(EVENTS))
    return _Turn(runner, job, root, workdir, before, early, _generations(adapters, job))


def test_nothing_changed_after_the_turn_so_the_early_uploads_are_the_result(
    isolated_adapters: Adapters, tmp_path: Path
) -> None:
    t = _completed_turn(isolated_adapters, tmp_path)
    result, _ = t.runner._collect(
        t.job, t.root, t.workdir, t.before, _outcome(), list(EVENTS), 0.0, t.early
    )

    assert result.changed_files == ["hello.py"]
    assert set(result.artifacts) == set(t.uploaded)
    assert _generations(isolated_adapters, t.job) == t.uploaded  # nothing uploaded twice


def test_a_write_after_the_early_diff_and_another_final_message_are_collected_again(
    isolated_adapters: Adapters, tmp_path: Path
) -> None:
    t = _completed_turn(isolated_adapters, tmp_path)
    job = t.job

    # A process codex left behind writes before it is stopped; codex's last-message file says
    # something else than its last event; one more record arrived.
    time.sleep(0.01)
    (t.workdir / "late.txt").write_text("written after the turn\n")
    os.utime(t.workdir / "late.txt")
    events: list[dict[str, object]] = [*EVENTS, {"type": "runner.exit"}]
    result, _ = t.runner._collect(
        job, t.root, t.workdir, t.before, _outcome("final words"), events, 0.0, t.early
    )

    assert result.changed_files == ["hello.py", "late.txt"]
    now = _generations(isolated_adapters, job)
    assert all(now[name] != t.uploaded[name] for name in now)  # every artifact uploaded again
    bucket = isolated_adapters.settings.topology.bucket("outputs")
    patch = isolated_adapters.storage.get(bucket, f"{job.job_id}/diff.patch").decode()
    assert "written after the turn" in patch
    final = isolated_adapters.storage.get(bucket, f"{job.job_id}/final-message.txt")
    assert final == b"final words"
    assert (
        len(isolated_adapters.storage.get(bucket, f"{job.job_id}/events.jsonl").splitlines()) == 4
    )


def test_the_last_agent_message_is_read_from_the_event_stream() -> None:
    assert last_agent_message(EVENTS) == "all done"
    assert last_agent_message([{"type": "turn.completed"}]) is None
