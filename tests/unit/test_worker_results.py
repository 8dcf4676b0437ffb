"""What a job's result keeps in the job document: small results whole, large ones bounded so
Firestore accepts the final write (the artifacts keep everything)."""

from __future__ import annotations

import json

import pytest

from shared.models import JobResult
from worker.jobrunner import (
    MAX_CHANGED_FILES_LISTED,
    MAX_FINAL_MESSAGE_CHARS,
    bound_result,
)

pytestmark = pytest.mark.unit


def test_a_small_result_is_kept_whole() -> None:
    result = JobResult(final_message="done", changed_files=["a.py"], structured_output={"ok": 1})
    assert bound_result(result) == result


def test_a_huge_result_fits_the_job_document_and_says_what_was_cut() -> None:
    result = JobResult(
        final_message="m" * 3_000_000,
        changed_files=[f"build/out/file-{n:06d}.o" for n in range(20_000)],
        structured_output={"rows": ["r" * 100] * 5_000},
        exit_code=0,
    )
    bounded = bound_result(result)
    assert bounded.truncated == ["changed_files", "final_message", "structured_output"]
    assert bounded.final_message is not None
    assert bounded.final_message.startswith("m" * 1000)
    assert bounded.final_message.endswith("more characters in final-message.txt]")
    assert len(bounded.final_message) < MAX_FINAL_MESSAGE_CHARS + 100
    assert bounded.changed_files == result.changed_files[:MAX_CHANGED_FILES_LISTED]
    assert bounded.structured_output is None
    assert bounded.exit_code == 0
    # Well under Firestore's 1 MiB document limit, with room for the request.
    assert len(json.dumps(bounded.model_dump(mode="json"))) < 200_000
