"""Pure logic of the channels: webhook signatures, the SSRF guard, rendezvous hashing, manifest
and spec parsing, message decoding and transition detection (no network)."""

from __future__ import annotations

import io
import json
import socket
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from google.events.cloud.firestore import Document, DocumentEventData, Value

from shared.errors import InvalidInput, PayloadTooLarge
from shared.models import JobStatus
from shared.services.common import event_too_old, stale_cloudevent
from shared.services.ingest import PubSubMessage, Rejected, decode_body
from shared.services.routing import WorkerInfo, healthy, rank_workers
from shared.services.transitions import Action, JobWrite, action_for, decode_job_write
from shared.services.uploads import (
    error_object_name,
    kind_of,
    parse_spec,
    read_manifest,
    result_object_name,
    tenant_for,
)
from shared.services.webhooks import (
    WebhookRefused,
    attempt_once,
    backoff_s,
    check_url,
    delivery_id,
    sign,
    verify_signature,
    webhook_body,
)
from tests.archives import damaged_zip, tgz

# ---- signatures ------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"s3cret-s3cret-123", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret-s3cret-123", 1700000000, body) == f"v1={expected}"


def test_verify_accepts_a_fresh_valid_signature_and_rejects_tampering() -> None:
    now = int(time.time())
    body = b'{"job":{"status":"succeeded"}}'
    sig = sign("k" * 20, now, body)
    assert verify_signature("k" * 20, body, str(now), sig)
    assert not verify_signature("k" * 20, body + b" ", str(now), sig)
    assert not verify_signature("x" * 20, body, str(now), sig)
    assert not verify_signature("k" * 20, body, str(now + 1), sig)
    assert not verify_signature("k" * 20, body, "not-a-number", sig)


def test_verify_rejects_old_timestamps() -> None:
    old = int(time.time()) - 3600
    body = b"{}"
    assert not verify_signature("k" * 20, body, str(old), sign("k" * 20, old, body))
    assert verify_signature("k" * 20, body, str(old), sign("k" * 20, old, body), now=old + 10)


def test_delivery_body_and_id_are_stable_across_attempts() -> None:
    summary = {"job_id": "j1", "status": "succeeded", "result": {"final_message": "hi"}}
    assert webhook_body(summary, "succeeded") == webhook_body(dict(summary), "succeeded")
    assert delivery_id("j1", "succeeded") == delivery_id("j1", "succeeded")
    assert delivery_id("j1", "succeeded") != delivery_id("j1", "failed")
    assert json.loads(webhook_body(summary, "succeeded"))["event"] == "job.succeeded"


def test_backoff_grows_exponentially_and_is_capped() -> None:
    assert [backoff_s(n, 2.0, 30.0) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]


# ---- SSRF guard ------------------------------------------------------------------------------


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # metadata server
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
        "100.64.0.1",  # carrier-grade NAT
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(WebhookRefused):
        check_url(
            "https://hook.example/x",
            allow_private=False,
            resolver=resolver({"hook.example": [address]}),
        )


def test_every_resolved_address_is_checked() -> None:
    table = {"mixed.example": ["93.184.216.34", "10.0.0.5"]}
    with pytest.raises(WebhookRefused, match=r"10\.0\.0\.5"):
        check_url("https://mixed.example/", allow_private=False, resolver=resolver(table))


def test_public_addresses_pass_and_private_ones_pass_when_allowed() -> None:
    table = {"ok.example": ["93.184.216.34", "2606:2800:220:1::1"], "local": ["127.0.0.1"]}
    check_url("https://ok.example/hook", allow_private=False, resolver=resolver(table))
    check_url("http://local:8080/hook", allow_private=True, resolver=resolver(table))


@pytest.mark.parametrize(
    "url",
    ["ftp://ok.example/", "https://user:pw@ok.example/", "https:///nohost", "https://nx.example/"],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused):
        check_url(url, allow_private=False, resolver=resolver({"ok.example": ["93.184.216.34"]}))


@pytest.mark.parametrize(
    "failure",
    [socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), TimeoutError()],
)
def test_a_resolver_failure_that_may_pass_is_retried_not_refused(failure: OSError) -> None:
    def flaky(host: str, port: int) -> list[str]:
        raise failure

    outcome = attempt_once(
        "https://hook.example/x",
        b"{}",
        secret="s",
        event="job.succeeded",
        delivery="d",
        timeout_s=1,
        allow_private=False,
        resolver=flaky,
    )
    assert outcome == "retry"


# ---- rendezvous hashing ----------------------------------------------------------------------


def _workers(n: int) -> list[WorkerInfo]:
    now = datetime.now(UTC)
    return [WorkerInfo(f"w{i}", f"http://w{i}", now, 2) for i in range(n)]


def test_rendezvous_is_deterministic_and_spreads_sessions() -> None:
    workers = _workers(4)
    picks = [rank_workers(f"sess-{i}", workers)[0].worker_id for i in range(400)]
    assert picks == [
        rank_workers(f"sess-{i}", list(reversed(workers)))[0].worker_id for i in range(400)
    ]
    counts = {w: picks.count(w) for w in {p for p in picks}}
    assert len(counts) == 4
    assert min(counts.values()) > 50


def test_removing_a_worker_only_moves_its_own_sessions() -> None:
    workers = _workers(4)
    before = {f"s{i}": rank_workers(f"s{i}", workers)[0].worker_id for i in range(300)}
    after = {f"s{i}": rank_workers(f"s{i}", workers[:3])[0].worker_id for i in range(300)}
    moved = [s for s in before if before[s] != after[s]]
    assert moved
    assert all(before[s] == "w3" for s in moved)


def test_stale_draining_and_full_workers_are_not_healthy() -> None:
    now = datetime.now(UTC)
    workers = [
        WorkerInfo("fresh", "http://a", now - timedelta(seconds=5), 2),
        WorkerInfo("stale", "http://b", now - timedelta(seconds=120), 2),
        WorkerInfo("draining", "http://c", now, 2, draining=True),
        WorkerInfo("no-slots", "http://d", now, 0),
        WorkerInfo("never", "http://e", None, 2),
    ]
    alive = healthy(workers, now=now, stale_after=timedelta(seconds=30))
    assert [w.worker_id for w in alive] == ["fresh"]


# ---- uploads ---------------------------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_manifest_is_read_from_the_archive_root() -> None:
    data = tgz({"./codex-job.yaml": b"prompt: fix it\npriority: high\n", "src/a.py": b"x=1"})
    assert read_manifest(data, "w.tar.gz", 10_000) == {"prompt": "fix it", "priority": "high"}
    data = _zip({"codex-job.json": b'{"prompt": "zip"}', "b.txt": b"b"})
    assert read_manifest(data, "w.zip", 10_000) == {"prompt": "zip"}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"src/codex-job.json": b"{}", "a": b"a"}, "no manifest at the archive root"),
        ({"codex-job.json": b"{}", "codex-job.yaml": b"a: 1"}, "more than one manifest"),
        ({"codex-job.json": b"{not json"}, "not valid JSON"),
        ({"codex-job.json": b'{"prompt": "p", "workspace": {"type": "empty"}}'}, "workspace"),
    ],
)
def test_bad_manifests_are_explained(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_manifest(tgz(files), "w.tgz", 10_000)


def test_unreadable_archives_and_huge_manifests_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="not a readable archive"):
        read_manifest(b"definitely not gzip", "w.tar.gz", 10_000)
    with pytest.raises(PayloadTooLarge):
        read_manifest(_zip({"codex-job.json": b"{" + b" " * 5000 + b"}"}), "w.zip", 1_000)


@pytest.mark.parametrize("damage", ["deflate", "method"])
def test_archives_whose_manifest_cannot_be_decompressed_are_rejected(
    damage: Literal["deflate", "method"],
) -> None:
    data = damaged_zip("codex-job.json", b'{"prompt": "' + b"a" * 300 + b'"}', damage)
    with pytest.raises(InvalidInput, match="not a readable archive"):
        read_manifest(data, "w.zip", 10_000)


def test_specs_nested_too_deeply_are_rejected_not_crashed_on() -> None:
    with pytest.raises(InvalidInput, match="nested too deeply"):
        parse_spec(b"a: " + b"[" * 5000 + b"]" * 5000, "job.yaml")
    with pytest.raises(InvalidInput, match="nested too deeply"):
        parse_spec(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "job.json")


def test_upload_naming_and_tenants() -> None:
    assert (
        result_object_name("tenants/acme/a/job.json")
        == "uploads/tenants/acme/a/job.json.result.json"
    )
    assert error_object_name("x/job.yaml") == "_errors/x/job.yaml.error.json"
    assert tenant_for("tenants/acme/job.json", "default") == "acme"
    assert tenant_for("tenants/job.json", "default") == "default"
    assert tenant_for("team/job.json", "default") == "default"
    with pytest.raises(InvalidInput):
        tenant_for("tenants/bad tenant!/job.json", "default")
    assert kind_of("a/B.TGZ") == "archive"
    assert kind_of("x.yml") == "spec"
    assert kind_of("x.txt") is None


def test_spec_must_be_a_mapping() -> None:
    assert parse_spec(b"prompt: hi", "a.yaml") == {"prompt": "hi"}
    with pytest.raises(InvalidInput, match="mapping"):
        parse_spec(b"- a\n- b\n", "a.yaml")


# ---- Pub/Sub message decoding ----------------------------------------------------------------


def _msg(data: bytes, **attributes: str) -> PubSubMessage:
    return PubSubMessage(data=data, attributes=attributes, message_id="m1")


def test_priority_attribute_fills_a_missing_body_field_only() -> None:
    assert decode_body(_msg(b'{"prompt": "p"}', priority="high"), 10_000)["priority"] == "high"
    body = decode_body(_msg(b'{"prompt": "p", "priority": "low"}', priority="high"), 10_000)
    assert body["priority"] == "low"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{nope", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"prompt": 5}', "schema_violation"),
        (b'{"prompt": "p", "unknown_field": 1}', "schema_violation"),
        (b'{"prompt": "' + b"x" * 3000 + b'"}', "too_large"),
    ],
)
def test_poison_bodies_are_classified(data: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        decode_body(_msg(data), 2_000)
    assert info.value.reason == reason


def test_a_body_nested_too_deeply_is_bad_json_not_a_crash() -> None:
    data = b'{"prompt": "p", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(Rejected, match="nested too deeply") as info:
        decode_body(_msg(data), 1_000_000)
    assert info.value.reason == "bad_json"


def test_event_age_guard() -> None:
    now = datetime.now(UTC)
    assert event_too_old(now - timedelta(hours=2), 3600, now)
    assert not event_too_old(now - timedelta(minutes=2), 3600, now)
    assert not event_too_old(None, 3600, now)
    old = (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert stale_cloudevent({"time": old}, 3600)
    assert not stale_cloudevent({"time": now.isoformat()}, 3600)
    assert not stale_cloudevent({"time": "not a time"}, 3600)
    assert not stale_cloudevent({}, 3600)


# ---- transition detection --------------------------------------------------------------------

NAME = "projects/p/databases/(default)/documents/jobs/job-1"


def _doc(status: str | None) -> Document:
    fields = {"status": Value(string_value=status)} if status else {}
    return Document(name=NAME, fields=fields)


def _event(old: str | None, new: str | None) -> DocumentEventData:
    data = DocumentEventData()
    if old is not None:
        data.old_value = _doc(old)
    if new is not None:
        data.value = _doc(new)
    decoded: DocumentEventData = DocumentEventData.deserialize(DocumentEventData.serialize(data))
    return decoded


@pytest.mark.parametrize(
    ("old", "new", "action"),
    [
        (None, "queued", Action.DISPATCH),
        ("running", "queued", Action.DISPATCH),
        ("dispatched", "queued", Action.DISPATCH),
        ("queued", "queued", Action.NONE),
        ("queued", "dispatched", Action.NONE),
        ("dispatched", "running", Action.NONE),
        ("running", "running", Action.NONE),
        ("running", "succeeded", Action.COMPLETE),
        ("queued", "cancelled", Action.COMPLETE),
        ("dispatched", "timed_out", Action.COMPLETE),
        ("succeeded", "succeeded", Action.NONE),
        ("running", None, Action.NONE),
    ],
)
def test_transitions_from_document_events(old: str | None, new: str | None, action: Action) -> None:
    write = decode_job_write(_event(old, new))
    assert write is not None
    assert write.job_id == "job-1"
    assert action_for(write) is action


def test_subcollection_documents_are_not_job_writes() -> None:
    data = DocumentEventData(value=Document(name=NAME + "/events/0000000001", fields={}))
    assert decode_job_write(data) is None


def test_unknown_status_values_are_ignored() -> None:
    write = decode_job_write(_event("running", "exploded"))
    assert write == JobWrite("job-1", JobStatus.RUNNING, None)
    assert action_for(write) is Action.NONE
