"""Stateful API fuzzing: schemathesis follows OpenAPI links from a created job to the routes
that act on it (read, list, cancel, delete, artifacts), so sequences such as create → cancel →
cancel → get run against real job ids. tests/e2e/test_api_schemathesis.py is the stateless run.

The checked-in openapi.yaml has no links (clients do not need them); this test adds them to a
copy. The events route is left out of the links: on a job that never finishes (this stack has
no workers) it streams until the client leaves, which is its documented behaviour.

It runs on its own API stack without the small active-jobs cap of the shared API test stack:
there, jobs that never finish soon made every creation a 429 and few links were followed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.stack import Stack, StackOptions
from tests.e2e.api_support import API_ENV, ApiEnv, api_env
from tests.reliability.conftest import REPO, Scenario

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "use_after_free",
        "ensure_resource_availability",
    ]
)
JOB_ID = "$response.body#/job_id"
TARGETS = {
    "GetJob": ("get_job_v2_jobs__job_id__get", {"job_id": JOB_ID}),
    "CancelJob": ("cancel_job_v2_jobs__job_id__cancel_post", {"job_id": JOB_ID}),
    "DeleteJob": ("delete_job_v2_jobs__job_id__delete", {"job_id": JOB_ID}),
    "ListArtifacts": ("list_artifacts_v2_jobs__job_id__artifacts_get", {"job_id": JOB_ID}),
    "ListJobs": ("list_jobs_v2_jobs_get", {}),
}


def linked_document(source: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(source.read_text())
    links = {
        name: {"operationId": op, "parameters": params} if params else {"operationId": op}
        for name, (op, params) in TARGETS.items()
    }
    for path, method, codes in (
        ("/v2/exec", "post", ("200", "202")),
        ("/v2/exec/async", "post", ("202",)),
        ("/v2/jobs/{job_id}", "get", ("200",)),
        ("/v2/jobs/{job_id}:cancel", "post", ("200", "202")),
    ):
        for code in codes:
            doc["paths"][path][method]["responses"][code]["links"] = links
    return doc


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("fuzzstack"),
        functions=(),
        workers=0,
        model_server=False,
        sweep_interval_s=0,
        extra_env={**API_ENV, "CODEX_CLOUD_MAX_ACTIVE_JOBS_PER_TENANT": "100000"},
    )
    with Stack(options).start() as stack:
        yield stack


@pytest.fixture
def api(fuzz_stack: Stack) -> ApiEnv:
    return api_env(fuzz_stack)


def test_stateful_fuzzing_follows_job_links(
    api: ApiEnv, tmp_path: Path, scenario: Scenario
) -> None:
    scenario.set(
        injected="schemathesis stateful (create → get/cancel/delete/list/artifacts)",
        expected="no 5xx, documented statuses and schemas",
    )
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists() and shutil.which("schemathesis") is None:
        pytest.skip("schemathesis is not installed (requirements-dev.txt)")
    spec = tmp_path / "openapi-linked.yaml"
    spec.write_text(yaml.safe_dump(linked_document(REPO / "openapi.yaml"), sort_keys=False))
    key, _ = api.key(tier="PREMIUM", scopes=("read", "write", "admin"), rate_limit=1_000_000)
    argv = [
        str(cli if cli.exists() else "schemathesis"),
        "run",
        str(spec),
        "--url",
        api.url,
        "--header",
        f"X-API-KEY: {key}",
        "--checks",
        CHECKS,
        "--phases",
        "stateful",
        "--max-examples",
        "40",
        "--generation-deterministic",
        "--request-timeout",
        "15",
        "--no-color",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=840, cwd=tmp_path)
    tail = [line for line in result.stdout.splitlines() if line.strip()][-3:]
    scenario.observe(f"exit {result.returncode}: {' / '.join(tail)[:200]}")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
