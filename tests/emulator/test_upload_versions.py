"""Upload jobs are pinned to the object version that was dropped, against fake-gcs-server (the
uploads bucket keeps no old versions, as in production)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared.adapters import Adapters
from shared.models import ArchiveWorkspace
from shared.services.uploads import StorageObject, handle_upload
from tests.archives import tgz
from worker.codex.workspace import WorkspaceError
from worker.jobrunner import JobRunner


def _version(generation: int | None) -> int:
    assert generation is not None  # fake-gcs-server reports one for every write
    return generation


def _name(suffix: str) -> str:
    return f"tenants/t1/versions/{uuid.uuid4().hex}{suffix}"


def test_a_version_replaced_before_its_event_is_handled_is_skipped(
    isolated_adapters: Adapters,
) -> None:
    storage = isolated_adapters.storage
    bucket, name = storage.bucket_name("uploads"), _name(".json")
    first = storage.put(bucket, name, json.dumps({"prompt": "first"}).encode())
    second = storage.put(bucket, name, json.dumps({"prompt": "second"}).encode())

    late = handle_upload(
        isolated_adapters,
        StorageObject(bucket=bucket, name=name, generation=_version(first.generation)),
    )
    assert late.status == "ignored"
    assert late.job_id is None
    current = handle_upload(
        isolated_adapters,
        StorageObject(bucket=bucket, name=name, generation=_version(second.generation)),
    )
    assert current.status == "created"
    assert current.job_id is not None
    assert isolated_adapters.jobs.require_job(current.job_id).request.prompt == "second"


def test_an_archive_job_runs_the_version_it_was_made_from_or_fails_clearly(
    isolated_adapters: Adapters, tmp_path: Path
) -> None:
    storage = isolated_adapters.storage
    bucket, name = storage.bucket_name("uploads"), _name(".tar.gz")
    manifest = json.dumps({"prompt": "build it"}).encode()
    first = storage.put(bucket, name, tgz({"codex-job.json": manifest, "v.txt": b"1"}))
    outcome = handle_upload(
        isolated_adapters,
        StorageObject(bucket=bucket, name=name, generation=_version(first.generation)),
    )
    assert outcome.job_id is not None
    job = isolated_adapters.jobs.require_job(outcome.job_id)
    workspace = job.request.workspace
    assert isinstance(workspace, ArchiveWorkspace)
    assert workspace.generation == first.generation

    runner = JobRunner(isolated_adapters, Path("/nonexistent/codex"), "w1")
    runner._prepare(job, tmp_path / "a", tmp_path / "a" / "workspace")
    assert (tmp_path / "a" / "workspace" / "v.txt").read_text() == "1"

    # Overwritten before the job started: it must not run the newer content.
    storage.put(bucket, name, tgz({"codex-job.json": manifest, "v.txt": b"2"}))
    with pytest.raises(WorkspaceError, match="no longer exists"):
        runner._prepare(job, tmp_path / "b", tmp_path / "b" / "workspace")
