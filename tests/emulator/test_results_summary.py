"""The results-bucket summary of upload jobs against fake-gcs-server: one object per uploaded
name, so versions of one upload share it, and the newest version's job must own it."""

from __future__ import annotations

import json
import uuid

from shared.adapters import Adapters
from shared.models import Channel, JobRecord, JobRequest
from shared.services.completion import _write_summary, build_summary, results_object_for


def _upload_job(adapters: Adapters, name: str, generation: int) -> JobRecord:
    return adapters.jobs.create_job(
        JobRequest(prompt=f"version {generation}"),
        tenant="t1",
        channel=Channel.UPLOAD,
        source={"bucket": "uploads", "object": name, "generation": generation},
    ).job


def _stored_job_id(adapters: Adapters, job: JobRecord) -> str:
    bucket = adapters.storage.bucket_name("results")
    return str(json.loads(adapters.storage.get(bucket, results_object_for(job)))["job_id"])


def test_an_older_versions_late_result_does_not_replace_the_newer_ones(
    isolated_adapters: Adapters,
) -> None:
    name = f"drops/{uuid.uuid4().hex}.json"
    old, new = _upload_job(isolated_adapters, name, 1), _upload_job(isolated_adapters, name, 2)
    _write_summary(isolated_adapters, new, build_summary(isolated_adapters, new))
    _write_summary(isolated_adapters, old, build_summary(isolated_adapters, old))
    assert _stored_job_id(isolated_adapters, old) == new.job_id


def test_a_newer_versions_result_replaces_the_older_ones(isolated_adapters: Adapters) -> None:
    name = f"drops/{uuid.uuid4().hex}.json"
    old, new = _upload_job(isolated_adapters, name, 1), _upload_job(isolated_adapters, name, 2)
    _write_summary(isolated_adapters, old, build_summary(isolated_adapters, old))
    _write_summary(isolated_adapters, new, build_summary(isolated_adapters, new))
    assert _stored_job_id(isolated_adapters, new) == new.job_id
