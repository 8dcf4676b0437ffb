from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.models import (
    MAX_METADATA_KEYS,
    MAX_OUTPUT_SCHEMA_DEPTH,
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
        # Hosts and ports URL parsing cannot take apart (regression: 500 in the service).
        ({"prompt": "p", "webhook": {"url": "http://[::1"}}, ("webhook", "url")),
        ({"prompt": "p", "webhook": {"url": "https://[evil]/x"}}, ("webhook", "url")),
        ({"prompt": "p", "webhook": {"url": "https://example.com:99999/"}}, ("webhook", "url")),
        ({"prompt": "p", "webhook": {"url": "https://:443/x"}}, ("webhook", "url")),
        ({"prompt": "p", "output_schema": {"type": "nonsense-type"}}, ("output_schema",)),
        # Lone surrogates (a JSON "\ud800" escape) cannot be encoded: regression, was a 500.
        ({"prompt": "\ud800"}, ("prompt",)),
        ({"prompt": "p", "output_schema": {"description": "\ud800"}}, ("output_schema",)),
        ({"prompt": "p", "output_schema": {"\udfff": {}}}, ("output_schema",)),
        ({"prompt": "p", "metadata": {"k": "a\ud800"}}, ("metadata",)),
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


def test_fingerprints_of_valid_requests_never_change() -> None:
    # Stored idempotency fingerprints are compared with new ones: the value is fixed.
    request = JobRequest.model_validate(
        {
            "prompt": "fix the tests ✓ 报告",
            "metadata": {"team": "a", "ключ": "значение"},
            "timeout_ms": 60000,
            "priority": "high",
            "workspace": {"type": "git", "url": "https://example.com/r.git", "ref": "main"},
            "webhook": {"url": "https://[2001:db8::1]:8443/hook", "secret": "s" * 20},
            "output_schema": {
                "type": "object",
                "properties": {"answer": {"type": "string", "description": "naïve"}},
            },
            "idempotency_key": "k",
        }
    )
    assert request.fingerprint() == (
        "c6223534e5499583cf6647af47b4d4103322ea80f2c4c3870794a48c92901ec1"
    )


def _nested_not(levels: int) -> dict[str, object]:
    schema: dict[str, object] = {}
    for _ in range(levels):
        schema = {"not": schema}
    return schema


def test_output_schema_nesting_is_limited_before_it_can_exhaust_the_stack() -> None:
    # Just within the limit (the innermost {} is a level too): accepted and checked.
    JobRequest(prompt="p", output_schema=_nested_not(MAX_OUTPUT_SCHEMA_DEPTH - 1))
    for levels in (MAX_OUTPUT_SCHEMA_DEPTH, 200, 5_000):  # 200 was a RecursionError (500)
        with pytest.raises(ValidationError) as info:
            JobRequest(prompt="p", output_schema=_nested_not(levels))
        assert _error_locs(info.value) == [("output_schema",)]
        assert "levels of nesting" in str(info.value)
    deep_list: list[object] = []
    for _ in range(MAX_OUTPUT_SCHEMA_DEPTH):
        deep_list = [deep_list]
    with pytest.raises(ValidationError):
        JobRequest(prompt="p", output_schema={"enum": deep_list})


def test_lone_surrogates_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as info:
        JobRequest(prompt="p", output_schema={"description": "\ud800"})
    assert "lone surrogate" in str(info.value)
    # Paired surrogates as JSON escapes decode to one valid character and are fine.
    ok = JobRequest.model_validate_json('{"prompt": "p \\ud83d\\ude00"}')
    assert ok.prompt == "p \U0001f600"
    ok.fingerprint()


def test_long_jobs_follow_the_threshold_unless_forced() -> None:
    assert JobRequest(prompt="p", timeout_ms=700_000).is_long(600_000)
    assert not JobRequest(prompt="p", timeout_ms=60_000).is_long(600_000)
    assert JobRequest(prompt="p", timeout_ms=60_000, long_running=True).is_long(600_000)
