from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.models import (
    MAX_METADATA_KEYS,
    MAX_PROMPT_CHARS,
    ArchiveWorkspace,
    GitWorkspace,
    JobRequest,
    Mode,
    Priority,
    WebhookSpec,
)


def _error_locs(exc: ValidationError) -> list[tuple[object, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_defaults_are_an_async_normal_job_with_an_empty_workspace() -> None:
    req = JobRequest(prompt="fix the tests")
    assert req.mode is Mode.ASYNC
    assert req.priority is Priority.NORMAL
    assert req.timeout_ms == 300_000
    assert req.workspace.type == "empty"


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"prompt": ""}, ("prompt",)),
        ({"prompt": "   "}, ("prompt",)),
        ({"prompt": "\u200b\u200d\ufeff "}, ("prompt",)),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, ("prompt",)),
        ({"prompt": "a\x00b"}, ("prompt",)),
        ({"prompt": "p", "timeout_ms": 10}, ("timeout_ms",)),
        ({"prompt": "p", "timeout_ms": 10**12}, ("timeout_ms",)),
        ({"prompt": "p", "mode": "batch"}, ("mode",)),
        ({"prompt": "p", "priority": "urgent"}, ("priority",)),
        ({"prompt": "p", "session_id": "../etc"}, ("session_id",)),
        (
            {"prompt": "p", "metadata": {f"k{i}": "v" for i in range(MAX_METADATA_KEYS + 1)}},
            ("metadata",),
        ),
        ({"prompt": "p", "metadata": {"k": "v" * 2000}}, ("metadata",)),
        (
            {"prompt": "p", "workspace": {"type": "git", "url": "--upload-pack=evil"}},
            ("workspace", "git", "url"),
        ),
        ({"prompt": "p", "workspace": {"type": "ftp"}}, ("workspace",)),
        ({"prompt": "p", "webhook": {"url": "file:///etc/passwd"}}, ("webhook", "url")),
        ({"prompt": "p", "output_schema": {"type": "nonsense-type"}}, ("output_schema",)),
        ({"prompt": "p", "unknown_field": 1}, ("unknown_field",)),
    ],
)
def test_invalid_requests_name_the_offending_field(
    payload: dict[str, object], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        JobRequest.model_validate(payload)
    assert loc in _error_locs(info.value)


def test_workspace_variants_are_discriminated_by_type() -> None:
    git = JobRequest.model_validate(
        {"prompt": "p", "workspace": {"type": "git", "url": "/srv/repo.git", "ref": "main"}}
    )
    assert isinstance(git.workspace, GitWorkspace)
    archive = JobRequest.model_validate(
        {"prompt": "p", "workspace": {"type": "archive", "object": "in/ws.tar.gz"}}
    )
    assert isinstance(archive.workspace, ArchiveWorkspace)


def test_fingerprint_ignores_the_idempotency_key_and_webhook_secret_only() -> None:
    a = JobRequest(
        prompt="p",
        idempotency_key="k1",
        webhook=WebhookSpec(**{"url": "https://example.test/h", "secret": "s" * 20}),
    )
    b = JobRequest(
        prompt="p",
        idempotency_key="k2",
        webhook=WebhookSpec(**{"url": "https://example.test/h", "secret": "t" * 20}),
    )
    c = JobRequest(
        prompt="p2",
        idempotency_key="k1",
        webhook=WebhookSpec(**{"url": "https://example.test/h", "secret": "s" * 20}),
    )
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_long_jobs_follow_the_threshold_unless_forced() -> None:
    assert JobRequest(prompt="p", timeout_ms=700_000).is_long(600_000)
    assert not JobRequest(prompt="p", timeout_ms=60_000).is_long(600_000)
    assert JobRequest(prompt="p", timeout_ms=60_000, long_running=True).is_long(600_000)
