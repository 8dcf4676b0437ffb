"""codex's state databases made once and copied into new jobs' homes (worker/codex/statedb.py),
against the real codex binary and the scripted model server."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from modelserver import ModelServer
from tests.codex.conftest import CodexJob
from worker.codex.config import CodexConfig, ProviderConfig
from worker.codex.sessions import pack_session_state, unpack_session_state
from worker.codex.statedb import build_state_template, seed_codex_home

pytestmark = [pytest.mark.codex, pytest.mark.timeout(60)]


@pytest.fixture
def template(tmp_path: Path, codex_binary: Path, model_server: ModelServer) -> Path:
    config = CodexConfig(provider=ProviderConfig(base_url=model_server.base_url))
    made = build_state_template(codex_binary, tmp_path / "template", config)
    assert made is not None
    return made


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.sqlite")}


def thread_ids(codex_home: Path) -> list[str]:
    with sqlite3.connect(codex_home / "state_5.sqlite") as db:
        ids = [row[0] for row in db.execute("SELECT id FROM threads")]
    db.close()
    return ids


def test_the_template_holds_migrated_databases_in_single_files(template: Path) -> None:
    names = sorted(p.name for p in template.glob("*.sqlite"))
    assert "state_5.sqlite" in names
    assert not list(template.glob("*.sqlite-wal"))  # each database is whole in its file
    for name in names:
        with sqlite3.connect(template / name) as db:
            (applied,) = db.execute("SELECT count(*) FROM _sqlx_migrations").fetchone()
        db.close()
        assert applied > 0, name
    assert thread_ids(template) == []


def test_a_seeded_home_runs_a_job_and_leaves_the_template_as_it_was(
    make_job: Any, template: Path
) -> None:
    before = digests(template)
    job: CodexJob = make_job()
    home = job.prepare()

    copied = seed_codex_home(template, home.codex_home)
    outcome = job.run("[[script:hello]] write hello.py and run it")

    assert sorted(copied) == sorted(before)
    assert outcome.status == "succeeded", outcome.error
    assert (job.workdir / "hello.py").read_text().startswith("print(")
    # codex used the copy: its new thread is recorded there, and nowhere else.
    assert thread_ids(home.codex_home) == [outcome.thread_id]
    assert digests(template) == before


def test_a_thread_begun_in_a_seeded_home_resumes_in_another(
    make_job: Any, template: Path, model_server: ModelServer
) -> None:
    first: CodexJob = make_job("first")
    seed_codex_home(template, first.prepare().codex_home)
    turn1 = first.run("[[script:followup]] start a note")
    assert turn1.status == "succeeded", turn1.error
    assert first.home is not None
    assert turn1.thread_id is not None
    blob = pack_session_state(first.home.codex_home, turn1.thread_id)

    second: CodexJob = make_job("second")
    (second.workdir / "note.txt").write_text((first.workdir / "note.txt").read_text())
    unpack_session_state(blob, second.prepare().codex_home)
    turn2 = second.run("append a second line", resume_thread_id=turn1.thread_id)

    assert turn2.status == "succeeded", turn2.error
    assert turn2.thread_id == turn1.thread_id
    assert (second.workdir / "note.txt").read_text() == "first turn\nsecond turn\n"
    assert model_server.requests()["requests"][-1]["turn"] == 1


def test_seeding_never_replaces_a_database_already_in_the_home(
    template: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "state_5.sqlite").write_bytes(b"the job's own")

    copied = seed_codex_home(template, home)

    assert "state_5.sqlite" not in copied
    assert (home / "state_5.sqlite").read_bytes() == b"the job's own"
    assert (home / "logs_2.sqlite").read_bytes() == (template / "logs_2.sqlite").read_bytes()


def test_a_codex_that_makes_no_databases_gives_no_template(tmp_path: Path) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\necho 'No prompt provided via stdin.' >&2\nexit 1\n")
    fake.chmod(0o755)
    config = CodexConfig(provider=ProviderConfig(base_url="http://127.0.0.1:9/v1"))

    assert build_state_template(fake, tmp_path / "template", config) is None


def test_a_template_dir_that_cannot_be_made_gives_no_template(
    tmp_path: Path, codex_binary: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the template's parent should be")
    config = CodexConfig(provider=ProviderConfig(base_url="http://127.0.0.1:9/v1"))

    assert build_state_template(codex_binary, blocker / "template", config) is None
