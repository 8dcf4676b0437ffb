"""Bad input through every door: each gets its documented error and leaves no partial state.

HTTP (docs/api.md "Errors"): problem+json with the documented status and code, and no job
document for the caller's tenant. Uploads (docs/contracts/uploads.md): the object is kept, an
`_errors/…error.json` report is written, no job document. Pub/Sub
(docs/contracts/jobs-topic.md): the message goes to the dead-letter topic with its `reason`,
no job document. Archives that pass on_upload's checks are the worker's to refuse: the job must
fail without anything landing outside its workspace.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from google.cloud import pubsub_v1
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from devstack.stack import Stack
from shared.adapters import Adapters
from shared.models import JobStatus
from shared.tokens import sign_stream_token
from tests.archives import tar_gz
from tests.reliability.conftest import Scenario
from tests.reliability.support import PUBSUB_TENANT, error_report, job_count, new_key

pytestmark = [pytest.mark.reliability_smoke, pytest.mark.timeout(240)]

JSON = {"Content-Type": "application/json"}

# (case, body bytes, extra headers, expected status, expected problem code)
HTTP_CASES: list[Any] = [
    ("malformed-json", b'{"prompt": ', JSON, 400, "bad-request"),
    ("json-array", b'["prompt"]', JSON, 422, "validation-error"),
    ("prompt-wrong-type", b'{"prompt": 5}', JSON, 422, "validation-error"),
    ("timeout-wrong-type", b'{"prompt": "x", "timeout_ms": "soon"}', JSON, 422, "validation-error"),
    ("metadata-not-strings", b'{"prompt": "x", "metadata": {"a": [1]}}', JSON, 422,
     "validation-error"),
    ("unknown-field", b'{"prompt": "x", "rm_rf": true}', JSON, 422, "validation-error"),
    ("blank-prompt", b'{"prompt": " \\n\\t\\u3000 "}', JSON, 422, "validation-error"),
    ("huge-prompt", json.dumps({"prompt": "p" * 100_001}).encode(), JSON, 422,
     "validation-error"),
    ("oversized-body", b'{"prompt": "' + b"x" * (1024 * 1024 + 10) + b'"}', JSON, 413,
     "payload-too-large"),
    ("not-json-content-type", b"prompt=x", {"Content-Type": "text/plain"}, 415,
     "unsupported-media-type"),
    ("invalid-utf8", b'{"prompt": "\xff\xfe"}', JSON, 400, "bad-request"),
    ("lone-surrogate", b'{"prompt": "\\ud800"}', JSON, 422, "validation-error"),
    ("webhook-file-url", b'{"prompt": "x", "webhook": {"url": "file:///etc/passwd"}}', JSON,
     422, "validation-error"),
    ("webhook-js-url", b'{"prompt": "x", "webhook": {"url": "javascript:alert(1)"}}', JSON, 422,
     "validation-error"),
    ("archive-outside-tenant", b'{"prompt": "x", "workspace": {"type": "archive", '
     b'"bucket": "codex-outputs", "object": "../other-tenant/secrets.tar.gz"}}', JSON, 422,
     "validation-error"),
    ("archive-of-another-tenant", b'{"prompt": "x", "workspace": {"type": "archive", '
     b'"object": "tenants/someone-else/ws.tar.gz"}}', JSON, 422, "validation-error"),
    ("deeply-nested", b'{"prompt": "x", "output_schema": ' + b'{"a": ' * 5000 + b"1"
     + b"}" * 5001, JSON, 400, "bad-request"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "code"),
    HTTP_CASES,
    ids=[c[0] if isinstance(c, tuple) else c.id for c in HTTP_CASES],
)
def test_http_bad_input(
    stack: Stack,
    adapters: Adapters,
    scenario: Scenario,
    case: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    scenario.set(injected=f"POST /v2/exec {case}", expected=f"{status} {code}, no job")
    key, tenant = new_key(adapters)
    resp = httpx.post(
        f"{stack.urls['api']}/v2/exec",
        content=body,
        headers={"X-API-KEY": key, **headers},
        timeout=60,
    )
    problem = _problem(resp)
    jobs = adapters.jobs.list_jobs(tenant, limit=5).jobs
    scenario.observe(f"{resp.status_code} {problem.get('code')}, {len(jobs)} job(s)")
    assert (resp.status_code, problem.get("code")) == (status, code)
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert jobs == []


def test_http_unicode_edge_cases_round_trip(
    stack: Stack, adapters: Adapters, scenario: Scenario
) -> None:
    """Valid but unusual text is accepted and stored exactly (no mangling, no partial job)."""
    prompt = "RTL \u202eevil\u202c, zero\u200bwidth, e\u0301, \U0001f600, NUL-free \ufeffbom"
    scenario.set(injected="prompt with bidi/zero-width/combining/emoji", expected="202, stored")
    key, tenant = new_key(adapters)
    resp = httpx.post(
        f"{stack.urls['api']}/v2/exec",
        json={"prompt": prompt, "metadata": {"\u00e9t\u00e9": "\U0001f600"}},
        headers={"X-API-KEY": key},
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    job = adapters.jobs.require_job(resp.json()["job_id"], tenant=tenant)
    scenario.observe(f"{resp.status_code}, stored equal: {job.request.prompt == prompt}")
    assert job.request.prompt == prompt
    assert job.request.metadata == {"\u00e9t\u00e9": "\U0001f600"}


def test_other_tenants_ids_are_not_found(
    stack: Stack, adapters: Adapters, scenario: Scenario
) -> None:
    scenario.set(injected="another tenant's job id on every job route", expected="404 each")
    owner_key, _ = new_key(adapters)
    other_key, other_tenant = new_key(adapters)
    api = stack.urls["api"]
    created = httpx.post(
        f"{api}/v2/exec", json={"prompt": "mine"}, headers={"X-API-KEY": owner_key}, timeout=30
    )
    job_id = created.json()["job_id"]
    statuses = []
    with httpx.Client(base_url=api, headers={"X-API-KEY": other_key}, timeout=30) as c:
        for method, path in (
            ("GET", f"/v2/jobs/{job_id}"),
            ("GET", f"/v2/jobs/{job_id}/events"),
            ("GET", f"/v2/jobs/{job_id}/artifacts"),
            ("GET", f"/v2/jobs/{job_id}/artifacts/x.txt"),
            ("POST", f"/v2/jobs/{job_id}:cancel"),
            ("DELETE", f"/v2/jobs/{job_id}"),
        ):
            statuses.append(c.request(method, path).status_code)
    job = adapters.jobs.require_job(job_id)
    scenario.observe(f"{statuses}; job still {job.status.value}")
    assert statuses == [404] * 6
    assert job.status is not JobStatus.CANCELLED
    assert not job.cancel_requested
    assert adapters.jobs.list_jobs(other_tenant, limit=5).jobs == []


@pytest.mark.parametrize("job_id", ["__main__", "__x__", "a..b/../c"])
def test_ids_firestore_cannot_hold_are_not_found(
    stack: Stack, adapters: Adapters, scenario: Scenario, job_id: str
) -> None:
    """Regression: a reserved Firestore id (`__main__`) made job routes answer 503."""
    scenario.set(injected=f"job routes with id {job_id!r}", expected="404 each, never 5xx")
    key, _ = new_key(adapters)
    quoted = httpx.URL(f"/v2/jobs/{job_id.replace('/', '%2F')}").raw_path.decode()
    statuses = []
    with httpx.Client(base_url=stack.urls["api"], headers={"X-API-KEY": key}, timeout=60) as c:
        for method, suffix in (
            ("GET", ""),
            ("DELETE", ""),
            ("POST", ":cancel"),
            ("GET", "/artifacts"),
        ):
            statuses.append(c.request(method, quoted + suffix).status_code)
    scenario.observe(str(statuses))
    assert statuses == [404] * 4


def test_forged_and_expired_stream_tokens(
    stack: Stack, adapters: Adapters, scenario: Scenario
) -> None:
    scenario.set(
        injected="WS with tampered, foreign-key, other-session and expired tokens",
        expected="401 each",
    )
    key, tenant = new_key(adapters)
    body = httpx.post(
        f"{stack.urls['api']}/v2/exec",
        json={"prompt": "stream me", "mode": "stream"},
        headers={"X-API-KEY": key},
        timeout=60,
    ).json()
    base, _, token = body["websocket_url"].partition("?token=")
    session = body["session_id"]
    secret = adapters.settings.token_signing_key.get_secret_value()
    payload, _, mac = token.partition(".")
    forged = {
        "tampered-mac": f"{payload}.{mac[:-2]}{'AA' if not mac.endswith('AA') else 'BB'}",
        "foreign-key": sign_stream_token("z" * 40, session_id=session, tenant=tenant, key_id="k"),
        "other-session": sign_stream_token(
            secret, session_id="sess_other", tenant=tenant, key_id="k"
        ),
        "expired": sign_stream_token(
            secret, session_id=session, tenant=tenant, key_id="k", now=time.time() - 3600
        ),
        "garbage": "not-a-token",
    }
    seen: dict[str, int] = {}
    for name, bad in forged.items():
        with pytest.raises(InvalidStatus) as info:
            connect(f"{base}?token={bad}", open_timeout=10).close()
        seen[name] = info.value.response.status_code
    scenario.observe(json.dumps(seen))
    assert set(seen.values()) == {401}


# ---- uploads ----------------------------------------------------------------------------------


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


MANIFEST = json.dumps({"prompt": "[[script:trivial]] archive"}).encode()


def _symlink_archive() -> bytes:
    link = tarfile.TarInfo("passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    return tar_gz(_file("codex-job.json", MANIFEST), (link, None))


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("codex-job.json", MANIFEST)
        # 300 MiB of zeros compresses to ~300 KiB: over the 100 MiB archive limit once expanded.
        with zf.open("zeros.bin", "w", force_zip64=True) as out:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(300):
                out.write(chunk)
    return buf.getvalue()


# (case, object suffix, body) — refused by on_upload with an error report and no job.
UPLOAD_REJECTS: list[tuple[str, str, bytes]] = [
    ("malformed-json", ".json", b'{"prompt": '),
    ("non-utf8-yaml", ".yaml", b"prompt: \xff\xfe\xfa caf\xe9\n"),
    ("wrong-types", ".json", b'{"prompt": ["a"], "timeout_ms": "x"}'),
    ("not-a-mapping", ".yaml", b"- just\n- a list\n"),
    ("oversized-spec", ".json", b'{"prompt": "' + b"x" * (1024 * 1024 + 10) + b'"}'),
    ("archive-without-manifest", ".tar.gz", tar_gz(_file("readme.txt", b"hi"))),
    ("archive-not-gzip", ".tar.gz", b"this is not an archive"),
]


@pytest.mark.parametrize(
    ("case", "suffix", "body"), UPLOAD_REJECTS, ids=[c[0] for c in UPLOAD_REJECTS]
)
def test_upload_bad_input(
    stack: Stack, adapters: Adapters, scenario: Scenario, case: str, suffix: str, body: bytes
) -> None:
    scenario.set(injected=f"upload {case}", expected="error report, object kept, no job")
    bucket = adapters.storage.bucket_name("uploads")
    name = f"rel/{case}-{uuid.uuid4().hex[:6]}{suffix}"
    adapters.storage.put(bucket, name, body)
    report = error_report(adapters, name)
    kept = adapters.storage.stat(bucket, name) is not None
    jobs = job_count(stack, adapters)
    scenario.observe(f"reason={report.get('reason')}, kept={kept}, jobs={jobs}")
    assert report.get("reason")
    assert kept
    assert jobs == 0


# Archives on_upload accepts (a manifest is there) but the worker must refuse to unpack.
UNSAFE_ARCHIVES: list[tuple[str, str, bytes]] = [
    (
        "path-traversal",
        ".tar.gz",
        tar_gz(_file("codex-job.json", MANIFEST), _file("../../escaped.txt", b"owned")),
    ),
    ("symlink", ".tar.gz", _symlink_archive()),
    ("zip-bomb", ".zip", _zip_bomb()),
]


@pytest.mark.parametrize(
    ("case", "suffix", "body"), UNSAFE_ARCHIVES, ids=[c[0] for c in UNSAFE_ARCHIVES]
)
def test_unsafe_archives_never_unpack(
    stack: Stack, adapters: Adapters, scenario: Scenario, case: str, suffix: str, body: bytes
) -> None:
    scenario.set(
        injected=f"upload archive: {case}",
        expected="refused (error report, no job) or job failed; nothing outside workspace",
    )
    bucket = adapters.storage.bucket_name("uploads")
    name = f"rel/{case}-{uuid.uuid4().hex[:6]}{suffix}"
    info = adapters.storage.put(bucket, name, body)
    from shared.jobstore import job_id_for_key

    job_id = job_id_for_key(PUBSUB_TENANT, f"gcs:{bucket}/{name}#{info.generation}")
    deadline = time.monotonic() + 90
    outcome = "nothing"
    while time.monotonic() < deadline:
        if adapters.storage.stat(bucket, f"_errors/{name}.error.json") is not None:
            outcome = "error report"
            assert adapters.jobs.get_job(job_id) is None
            break
        job = adapters.jobs.get_job(job_id)
        if job is not None and job.status.terminal:
            outcome = f"job {job.status.value}: {job.error.code if job.error else '-'}"
            assert job.status is JobStatus.FAILED
            break
        time.sleep(0.3)
    # Anywhere a `../..` member could land: under the workspaces, beside them, or in the
    # stack's own state.
    roots = (stack.workspace_root, stack.state_dir)
    escaped = [p for root in roots for p in root.glob("**/escaped.txt")]
    escaped += [p for p in [stack.workspace_root.parent / "escaped.txt"] if p.exists()]
    scenario.observe(f"{outcome}; escaped files: {len(escaped)}")
    assert outcome != "nothing"
    assert escaped == []


# ---- Pub/Sub ---------------------------------------------------------------------------------

PUBSUB_REJECTS: list[tuple[str, bytes, dict[str, str], str]] = [
    ("bad-json", b'{"prompt": ', {}, "bad_json"),
    ("non-utf8", b'{"prompt": "\xff"}', {}, "bad_json"),
    ("schema-violation", b'{"prompt": 1}', {}, "schema_violation"),
    ("unknown-field", b'{"prompt": "x", "shell": "rm -rf /"}', {}, "schema_violation"),
    ("unknown-tenant", b'{"prompt": "x"}', {"tenant": "nobody-here"}, "unknown_tenant"),
    ("too-large", b'{"prompt": "' + b"x" * (600 * 1024) + b'"}', {}, "too_large"),
]


@pytest.mark.parametrize(
    ("case", "data", "attrs", "reason"), PUBSUB_REJECTS, ids=[c[0] for c in PUBSUB_REJECTS]
)
def test_pubsub_bad_input(
    stack: Stack,
    adapters: Adapters,
    scenario: Scenario,
    case: str,
    data: bytes,
    attrs: dict[str, str],
    reason: str,
) -> None:
    scenario.set(injected=f"publish {case}", expected=f"dead letter reason={reason}, no job")
    marker = uuid.uuid4().hex
    message_id = adapters.publisher.publish("jobs", data, {**attrs, "rel_marker": marker})
    dead = _pull_dead_letter(stack, message_id)
    jobs = job_count(stack, adapters)
    got = dead.get("reason") if dead else None
    scenario.observe(f"dead letter reason={got}, jobs={jobs}")
    assert got == reason
    assert jobs == 0


def _pull_dead_letter(stack: Stack, message_id: str, timeout_s: float = 30) -> dict[str, str]:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(
        stack.options.project, stack.topology.subscriptions["jobs_dlq_audit"].name
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            resp = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
            if resp.received_messages:
                subscriber.acknowledge(
                    request={
                        "subscription": path,
                        "ack_ids": [m.ack_id for m in resp.received_messages],
                    }
                )
            for m in resp.received_messages:
                attrs = dict(m.message.attributes)
                if attrs.get("original_message_id") == message_id:
                    return attrs
    finally:
        subscriber.close()
    return {}


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
