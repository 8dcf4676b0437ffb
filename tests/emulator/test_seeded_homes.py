"""The worker's jobs start on a CODEX_HOME seeded with codex's state databases (decision 0024):
made once per worker with the real codex binary, copied into each new job's home before codex
starts, removed with the worker; off when the setting says so."""

from __future__ import annotations

from pathlib import Path

from shared.adapters import Adapters
from shared.models import Channel, JobRecord, JobRequest, JobStatus
from shared.settings import Settings
from worker.codex.binary import find_codex_binary
from worker.codex.sessions import find_rollout_files, pack_session_state
from worker.jobrunner import JobRunner
from worker.sessions import SessionState


def _runner(adapters: Adapters, tmp_path: Path, *, seed: bool = True) -> JobRunner:
    configured = Adapters(
        Settings(
            project_id=adapters.settings.project_id,
            workspace_root=str(tmp_path / "workspaces"),
            codex_seed_state=seed,
        )
    )
    return JobRunner(configured, find_codex_binary(), "w1")


def _claimed(adapters: Adapters) -> JobRecord:
    store = adapters.jobs
    job_id = store.create_job(JobRequest(prompt="p"), tenant="t1", channel=Channel.HTTP).job.job_id
    store.transition(job_id, JobStatus.DISPATCHED)
    return store.claim(job_id, worker_id="w1", lease_s=30)


def _home_of_new_job(runner: JobRunner, job: JobRecord, tmp_path: Path) -> Path:
    root = tmp_path / "job"
    workdir = root / "workspace"
    workdir.mkdir(parents=True)
    spec = runner._spec(job, root, workdir, None)
    return Path(spec.env["CODEX_HOME"])


def test_a_new_job_starts_with_the_workers_databases_and_they_go_with_the_worker(
    isolated_adapters: Adapters, tmp_path: Path
) -> None:
    runner = _runner(isolated_adapters, tmp_path)
    runner.prepare_state_template()
    template = runner.state_template
    assert template is not None

    home = _home_of_new_job(runner, _claimed(isolated_adapters), tmp_path)

    seeded = sorted(p.name for p in home.glob("*.sqlite"))
    assert "state_5.sqlite" in seeded
    assert seeded == sorted(p.name for p in template.glob("*.sqlite"))
    runner.discard_state_template()
    assert not template.exists()
    assert runner.state_template is None


def test_turned_off_a_new_job_starts_on_a_fresh_home(
    isolated_adapters: Adapters, tmp_path: Path
) -> None:
    runner = _runner(isolated_adapters, tmp_path, seed=False)
    runner.prepare_state_template()

    home = _home_of_new_job(runner, _claimed(isolated_adapters), tmp_path)

    assert runner.state_template is None
    assert list(home.glob("*.sqlite")) == []
    assert not list((tmp_path / "workspaces").glob(".codex-state-*"))


def test_a_resumed_thread_starts_on_a_fresh_home_with_its_rollout(
    isolated_adapters: Adapters, tmp_path: Path
) -> None:
    runner = _runner(isolated_adapters, tmp_path)
    runner.prepare_state_template()
    thread = "0199aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee"
    saved = tmp_path / "saved-home"
    rollout = (
        saved / "sessions" / "2026" / "12" / "02" / f"rollout-2026-12-02T10-00-00-{thread}.jsonl"
    )
    rollout.parent.mkdir(parents=True)
    rollout.write_text('{"type":"session_meta"}\n')
    runner.sessions.upload("s1", "j0-1/", state=pack_session_state(saved, thread), workspace=None)
    session = SessionState("s1", "t1", thread_id=thread, turns=1, last_job_id="j0", prefix="j0-1/")
    root = tmp_path / "job"
    (root / "workspace").mkdir(parents=True)

    spec = runner._spec(_claimed(isolated_adapters), root, root / "workspace", session)

    home = Path(spec.env["CODEX_HOME"])
    assert spec.resume_thread_id == thread
    assert find_rollout_files(home, thread)
    # codex backfills its state from the restored rollouts itself: nothing seeded says it's done.
    assert list(home.glob("*.sqlite")) == []
