"""Property-based checks of the running API against the checked-in OpenAPI document.

Schemathesis generates valid and invalid requests for every operation (bounded, deterministic)
and fails on any 5xx, undocumented status code or content type, or response that does not match
its schema.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.api_support import ApiEnv, api, api_stack

__all__ = ["api", "api_stack"]
REPO = Path(__file__).resolve().parents[2]
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.mark.timeout(600)
def test_api_conforms_to_its_openapi_document(api: ApiEnv, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    assert cli.exists() or shutil.which("schemathesis"), "schemathesis missing: run make setup"
    key, _ = api.key(tier="PREMIUM", scopes=("read", "write", "admin"), rate_limit=1_000_000)
    argv = [
        str(cli if cli.exists() else "schemathesis"),
        "run",
        str(REPO / "openapi.yaml"),
        "--url",
        api.url,
        "--header",
        f"X-API-KEY: {key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "50",
        "--generation-deterministic",
        "--request-timeout",
        "15",
        "--workers",
        "2",
        "--no-color",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
