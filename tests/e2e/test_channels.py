"""The channels through the whole local stack: Pub/Sub and upload ingress, dispatch to the
priority queues, terminal side effects (once each, even on duplicate events), webhook retries
and the sweeper. Workers are fakes run by the test and registered in `workers/`, so these
tests do not need codex; the real-worker pipeline is in test_channels_pipeline.py."""

from __future__ import annotations

import base64
import io
import itertools
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import httpx
import pytest
from google.api_core import exceptions as gexc
from google.events.cloud.firestore import Document, DocumentEventData, Value

from devstack.stack import Stack
from shared.adapters import Adapters
from shared.models import Channel, JobRecord, JobRequest, JobStatus, WebhookSpec
from shared.services.routing import _score
from shared.services.sweeper import sweep
from shared.services.webhooks import verify_signature
from tests.archives import tgz
from tests.httpfakes import FakeServer, Reply, Request, fake_server

FAKE_WORKER_ID = "fake-worker"
REAL_WORKER_IDS = ("worker-0", "worker-1")


def wait_until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ignoring_worker(req: Request) -> Reply:
    """A worker that accepts task deliveries but never runs anything (the test drives state)."""
    if req.method == "POST" and req.path.endswith(":run"):
        return 200, {"status": "ignored"}
    return 404, {}


@pytest.fixture
def fake_worker(adapters: Adapters) -> Iterator[FakeServer]:
    with fake_server(ignoring_worker) as server:
        ref = adapters.firestore.collection("workers").document(FAKE_WORKER_ID)
        ref.set(
            {"url": server.url, "slots": 4, "draining": False, "heartbeat_at": datetime.now(UTC)}
        )
        yield server


def affine_session(prefix: str = "sess") -> str:
    """A session id that rendezvous hashing assigns to the fake worker, whichever of the real
    workers are registered at dispatch time."""
    for _ in range(10_000):
        candidate = f"{prefix}-{uuid.uuid4().hex[:12]}"
        mine = _score(candidate, FAKE_WORKER_ID)
        if all(mine > _score(candidate, w) for w in REAL_WORKER_IDS):
            return candidate
    raise AssertionError("no affine session found")


def jobs_of(adapters: Adapters, tenant: str) -> list[JobRecord]:
    return adapters.jobs.list_jobs(tenant, limit=100).jobs


def wait_status(
    adapters: Adapters, job_id: str, *statuses: JobStatus, timeout_s: float = 15
) -> JobRecord:
    def check() -> JobRecord | None:
        job = adapters.jobs.get_job(job_id)
        return job if job is not None and job.status in statuses else None

    return wait_until(check, timeout_s, f"job {job_id} in {statuses}")  # type: ignore[no-any-return]


def create_job(adapters: Adapters, fake: FakeServer, **fields: Any) -> JobRecord:
    fields.setdefault("session_id", affine_session())
    request = JobRequest(prompt=fields.pop("prompt", "[[script:hello]] hi"), **fields)
    job = adapters.jobs.create_job(request, tenant="t1", channel=Channel.HTTP).job
    return wait_status(adapters, job.job_id, JobStatus.DISPATCHED)


@pytest.fixture
def subscriber() -> Iterator[pubsub_v1.SubscriberClient]:
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


def new_subscription(sub: pubsub_v1.SubscriberClient, settings: Any, topic_key: str) -> str:
    project = settings.project_id
    name = sub.subscription_path(project, f"test-{topic_key}-{uuid.uuid4().hex[:8]}")
    topic = f"projects/{project}/topics/{settings.topology.topic(topic_key)}"
    sub.create_subscription(request={"name": name, "topic": topic, "ack_deadline_seconds": 10})
    return str(name)


def pull(sub: pubsub_v1.SubscriberClient, path: str, want: int, timeout_s: float = 15) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < want:
        try:
            resp = sub.pull(request={"subscription": path, "max_messages": 50}, timeout=2)
        except gexc.DeadlineExceeded:
            continue
        if resp.received_messages:
            sub.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [m.ack_id for m in resp.received_messages],
                }
            )
            got.extend(m.message for m in resp.received_messages)
    return got


def publish(adapters: Adapters, data: bytes, **attributes: str) -> str:
    return adapters.publisher.publish("jobs", data, attributes)


# ---- Pub/Sub ingress -------------------------------------------------------------------------


def test_publish_creates_exactly_one_job_per_idempotency_key(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    body = json.dumps(
        {"prompt": "[[script:hello]] via pubsub", "session_id": affine_session()}
    ).encode()
    publish(adapters, body, idempotency_key="order-42", tenant="default", priority="high")
    publish(adapters, body, idempotency_key="order-42", tenant="default", priority="high")
    job = wait_until(lambda: jobs_of(adapters, "default"), what="job from pubsub")[0]
    time.sleep(1.0)  # give the duplicate time to land (it must not create a second job)
    jobs = jobs_of(adapters, "default")
    assert [j.job_id for j in jobs] == [job.job_id]
    assert job.channel is Channel.PUBSUB
    assert job.request.priority.value == "high"
    assert job.idempotency_key == "order-42"


def test_redelivered_message_without_key_maps_to_one_job(
    stack: Stack, adapters: Adapters, fake_worker: FakeServer
) -> None:
    # Replay the same CloudEvent (same message id) to the function, as a redelivery would.
    body = json.dumps({"prompt": "no key", "session_id": affine_session()}).encode()
    envelope = {
        "message": {
            "data": base64.b64encode(body).decode(),
            "attributes": {},
            "messageId": "msg-replayed-1",
            "publishTime": datetime.now(UTC).isoformat(),
        },
        "subscription": "projects/p/subscriptions/codex-jobs-ingest",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/codex-jobs",
        "ce-id": "msg-replayed-1",
        "content-type": "application/json",
    }
    for _ in range(2):
        resp = httpx.post(stack.urls["ingest"], headers=headers, json=envelope, timeout=30)
        assert resp.status_code == 200, resp.text
    jobs = jobs_of(adapters, "default")
    assert len(jobs) == 1
    assert jobs[0].idempotency_key == "msg-replayed-1"


@pytest.mark.parametrize(
    ("data", "attributes", "reason"),
    [
        (b"{this is not json", {}, "bad_json"),
        (b'{"prompt": 12, "mode": "sometimes"}', {}, "schema_violation"),
        (b'{"prompt": "hello"}', {"tenant": "nobody-knows-me"}, "unknown_tenant"),
        (json.dumps({"prompt": "x" * 600_000}).encode(), {}, "too_large"),
        # Another tenant's upload as the workspace: refused once the tenant is known.
        (
            json.dumps(
                {"prompt": "p", "workspace": {"type": "archive", "object": "tenants/other/w.tgz"}}
            ).encode(),
            {},
            "invalid_request",
        ),
        (b'{"prompt": "p", "metadata": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", {}, "bad_json"),
    ],
)
def test_poison_messages_are_dead_lettered_once_with_reason_and_payload(
    adapters: Adapters,
    subscriber: pubsub_v1.SubscriberClient,
    data: bytes,
    attributes: dict[str, str],
    reason: str,
) -> None:
    dlq = new_subscription(subscriber, adapters.settings, "jobs_dlq")
    try:
        message_id = publish(adapters, data, origin="test", **attributes)
        (dead,) = pull(subscriber, dlq, 1)
        time.sleep(0.5)
        assert pull(subscriber, dlq, 1, timeout_s=1.5) == []  # exactly one record
    finally:
        subscriber.delete_subscription(request={"subscription": dlq})
    assert dead.data == data
    assert dead.attributes["reason"] == reason
    assert dead.attributes["error"]
    assert dead.attributes["original_message_id"] == message_id
    assert json.loads(dead.attributes["original_attributes"])["origin"] == "test"
    assert jobs_of(adapters, attributes.get("tenant", "default")) == []


# ---- upload ingress --------------------------------------------------------------------------


def upload(adapters: Adapters, name: str, data: bytes) -> None:
    adapters.storage.put(adapters.storage.bucket_name("uploads"), name, data)


def test_spec_upload_becomes_a_job_of_the_prefix_tenant(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    spec = f"prompt: '[[script:hello]] from yaml'\npriority: low\nsession_id: {affine_session()}\n"
    upload(adapters, "tenants/acme/specs/job.yaml", spec.encode())
    (job,) = wait_until(lambda: jobs_of(adapters, "acme"), what="upload job")
    assert job.channel is Channel.UPLOAD
    assert job.request.prompt == "[[script:hello]] from yaml"
    assert job.request.workspace.type == "empty"
    assert job.source["object"] == "tenants/acme/specs/job.yaml"
    assert job.source["result_object"] == "uploads/tenants/acme/specs/job.yaml.result.json"


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_archive_upload_becomes_a_job_with_the_archive_workspace(
    adapters: Adapters, fake_worker: FakeServer, suffix: str
) -> None:
    manifest = json.dumps({"prompt": "[[script:hello]] archive", "session_id": affine_session()})
    files = {"codex-job.json": manifest.encode(), "src/main.py": b"print('hi')\n"}
    if suffix == ".zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        data = buf.getvalue()
    else:
        data = tgz(files)
    upload(adapters, f"drops/work{suffix}", data)
    (job,) = wait_until(lambda: jobs_of(adapters, "default"), what="archive job")
    workspace = job.request.workspace
    assert workspace.type == "archive"
    assert workspace.object == f"drops/work{suffix}"
    assert workspace.bucket == adapters.storage.bucket_name("uploads")


@pytest.mark.parametrize(
    ("name", "data", "reason", "detail"),
    [
        ("bad/spec.json", b'{"prompt": ', "validation-error", "not valid JSON"),
        ("bad/spec.yaml", b"prompt: ''\n", "validation-error", "prompt"),
        ("bad/nomanifest.tar.gz", tgz({"src/a.py": b"x"}), "validation-error", "no manifest"),
        ("bad/notes.txt", b"hello", "validation-error", "unsupported file type"),
    ],
)
def test_bad_uploads_get_an_error_report_and_are_kept(
    adapters: Adapters, name: str, data: bytes, reason: str, detail: str
) -> None:
    bucket = adapters.storage.bucket_name("uploads")
    upload(adapters, name, data)
    report_name = f"_errors/{name}.error.json"
    wait_until(lambda: adapters.storage.stat(bucket, report_name), what="error report")
    report = json.loads(adapters.storage.get(bucket, report_name))
    assert report["reason"] == reason
    assert detail in report["detail"]
    assert report["object"] == name
    assert adapters.storage.get(bucket, name) == data  # the upload is never deleted
    time.sleep(0.5)
    assert jobs_of(adapters, "default") == []
    names = [b.name for b in adapters.storage.list(bucket)]
    assert sorted(names) == sorted([name, report_name])  # the report did not trigger a report


# ---- dispatch --------------------------------------------------------------------------------


def test_each_priority_reaches_its_own_queue(adapters: Adapters, fake_worker: FakeServer) -> None:
    jobs = {
        p: create_job(adapters, fake_worker, priority=p)
        for p in ("critical", "high", "normal", "low")
    }
    fake_worker.wait_for(lambda reqs: len([r for r in reqs if r.path.endswith(":run")]) >= 4)
    runs = {
        r.path.split("/")[3].removesuffix(":run"): r
        for r in fake_worker.requests
        if r.path.endswith(":run")
    }
    for priority, job in jobs.items():
        req = runs[job.job_id]
        assert req.headers["X-CloudTasks-QueueName"].endswith(f"codex-jobs-{priority}")
        assert req.json() == {"job_id": job.job_id, "dispatch_seq": job.next_seq - 1}
        assert req.headers["X-CloudTasks-TaskName"].endswith(f"{job.job_id}-{job.next_seq - 1}")
    time.sleep(0.5)
    assert len([r for r in fake_worker.requests if r.path.endswith(":run")]) == 4


def test_a_full_worker_is_retried_with_backoff_not_hammered(adapters: Adapters) -> None:
    """Cloud Tasks retries a 429 with growing backoff (queue retry config); the local emulator
    is run the same way, so a busy worker is not flooded while jobs wait for a slot."""
    busy_answers = 3

    def busy_then_free(req: Request) -> Reply:
        runs = [r for r in fake.requests if r.path.endswith(":run")]
        if req.path.endswith(":run") and len(runs) <= busy_answers:
            return 429, {"title": "all job slots are busy"}
        return ignoring_worker(req)

    with fake_server(busy_then_free) as fake:
        ref = adapters.firestore.collection("workers").document(FAKE_WORKER_ID)
        ref.set({"url": fake.url, "slots": 1, "draining": False, "heartbeat_at": datetime.now(UTC)})
        create_job(adapters, fake)
        fake.wait_for(lambda reqs: len([r for r in reqs if r.path.endswith(":run")]) > busy_answers)
    times = [r.received_at for r in fake.requests if r.path.endswith(":run")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == busy_answers + 1  # delivered once it was accepted, not again
    assert min(gaps) >= 0.08  # never retried on the next scan
    assert gaps[-1] > gaps[0] * 1.5  # and the wait grows


def test_without_a_healthy_registered_worker_dispatch_uses_the_configured_url(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    # A stale heartbeat takes the fake out of rotation; the session then lands elsewhere.
    adapters.firestore.collection("workers").document(FAKE_WORKER_ID).update(
        {"heartbeat_at": datetime.now(UTC) - timedelta(hours=1)}
    )
    session = affine_session()
    request = JobRequest(prompt="[[script:hello]] hi", session_id=session)
    job = adapters.jobs.create_job(request, tenant="t1", channel=Channel.HTTP).job
    wait_status(adapters, job.job_id, JobStatus.DISPATCHED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    time.sleep(0.5)
    assert not any(job.job_id in r.path for r in fake_worker.requests)


def test_a_redelivered_queued_event_enqueues_no_second_task(
    stack: Stack, adapters: Adapters, fake_worker: FakeServer
) -> None:
    # The fake worker acknowledges without claiming: the job stays dispatched, so each
    # redelivery gets as far as the enqueue, which Cloud Tasks (and the local emulator)
    # refuses for a task name already used.
    job = create_job(adapters, fake_worker)

    def runs() -> list[Any]:
        return [r for r in fake_worker.requests if r.path.endswith(f"{job.job_id}:run")]

    fake_worker.wait_for(lambda _reqs: len(runs()) >= 1)
    for _ in range(2):
        headers, body = terminal_event(stack.options.project, job, "", "queued")
        resp = httpx.post(stack.urls["on_job_written"], headers=headers, content=body, timeout=30)
        assert resp.status_code == 200, resp.text
    time.sleep(1.0)
    assert len(runs()) == 1
    record = adapters.jobs.get_job(job.job_id)
    assert record is not None
    assert record.status is JobStatus.DISPATCHED
    assert record.next_seq == job.next_seq  # no second dispatch transition either


# ---- terminal side effects -------------------------------------------------------------------


def webhook_receiver(fail_first: int = 0) -> Callable[[Request], Reply]:
    calls = {"n": 0}

    def respond(req: Request) -> Reply:
        calls["n"] += 1
        return (500, {"error": "down"}) if calls["n"] <= fail_first else (200, {"ok": True})

    return respond


def finish(
    adapters: Adapters, job: JobRecord, status: JobStatus = JobStatus.SUCCEEDED
) -> JobRecord:
    from shared.models import JobResult

    running = adapters.jobs.claim(job.job_id, worker_id="test-worker", lease_s=60)
    return adapters.jobs.finish(
        job.job_id,
        status,
        worker_id="test-worker",
        attempt=running.attempt,
        result=JobResult(exit_code=0, final_message="done", attempt=running.attempt),
    )


def terminal_event(
    project: str, job: JobRecord, old: str, new: str
) -> tuple[dict[str, str], bytes]:
    name = f"projects/{project}/databases/(default)/documents/jobs/{job.job_id}"
    data = DocumentEventData(
        value=Document(name=name, fields={"status": Value(string_value=new)}),
        old_value=Document(name=name, fields={"status": Value(string_value=old)}),
    )
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/(default)",
        "ce-subject": f"documents/jobs/{job.job_id}",
        "ce-id": f"replay-{uuid.uuid4().hex}",
        "ce-time": datetime.now(UTC).isoformat(),
        "content-type": "application/protobuf",
    }
    return headers, DocumentEventData.serialize(data)


def test_terminal_transition_publishes_once_calls_the_webhook_and_writes_the_summary(
    stack: Stack,
    adapters: Adapters,
    fake_worker: FakeServer,
    subscriber: pubsub_v1.SubscriberClient,
) -> None:
    secret = "whsec-test-0123456789"
    results_sub = subscriber.subscription_path(
        adapters.settings.project_id, "codex-results-default"
    )
    with fake_server(webhook_receiver()) as hook:
        job = create_job(
            adapters, fake_worker, webhook=WebhookSpec(url=hook.url + "/hook", secret=secret)
        )
        done = finish(adapters, job)
        hook.wait_for(lambda reqs: len(reqs) >= 1)
        messages = pull(subscriber, results_sub, 1)
        bucket = adapters.storage.bucket_name("results")
        wait_until(lambda: adapters.storage.stat(bucket, f"jobs/{job.job_id}.json"), what="summary")

        # The same Firestore event delivered twice more: no effect repeats.
        for _ in range(2):
            headers, body = terminal_event(stack.options.project, done, "running", "succeeded")
            resp = httpx.post(
                stack.urls["on_job_written"], headers=headers, content=body, timeout=30
            )
            assert resp.status_code == 200, resp.text
        time.sleep(1.0)
        assert pull(subscriber, results_sub, 1, timeout_s=1.5) == []
        calls = list(hook.requests)

    (message,) = messages
    assert message.attributes["job_id"] == job.job_id
    assert message.attributes["status"] == "succeeded"
    assert message.attributes["tenant"] == "t1"
    payload = json.loads(message.data)
    assert payload["status"] == "succeeded"
    assert payload["result"]["final_message"] == "done"
    assert payload["artifacts_prefix"] == f"gs://codex-outputs/{job.job_id}/"

    (call,) = calls
    assert call.path == "/hook"
    assert call.headers["X-Codex-Event"] == "job.succeeded"
    assert verify_signature(
        secret, call.body, call.headers["X-Codex-Timestamp"], call.headers["X-Codex-Signature"]
    )
    assert json.loads(call.body)["job"]["job_id"] == job.job_id

    summary = json.loads(adapters.storage.get(bucket, f"jobs/{job.job_id}.json"))
    assert summary["job_id"] == job.job_id
    assert summary["status"] == "succeeded"


def test_a_failing_webhook_receiver_is_retried_with_backoff_until_it_succeeds(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    secret = "whsec-retry-0123456789"
    with fake_server(webhook_receiver(fail_first=2)) as hook:
        job = create_job(adapters, fake_worker, webhook=WebhookSpec(url=hook.url, secret=secret))
        finish(adapters, job, JobStatus.FAILED)
        hook.wait_for(lambda reqs: len(reqs) >= 3, timeout_s=30)
        time.sleep(1.0)
        calls = list(hook.requests)
    assert len(calls) == 3
    assert len({c.headers["X-Codex-Delivery"] for c in calls}) == 1
    assert len({c.body for c in calls}) == 1
    for call in calls:
        assert verify_signature(
            secret, call.body, call.headers["X-Codex-Timestamp"], call.headers["X-Codex-Signature"]
        )
    stamps = [int(c.headers["X-Codex-Timestamp"]) for c in calls]
    assert stamps[2] - stamps[1] >= 3  # the scheduled attempt waited for its backoff


def test_upload_job_summary_is_named_after_the_upload(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    spec = json.dumps({"prompt": "[[script:hello]] x", "session_id": affine_session()})
    upload(adapters, "tenants/acme/in/job.json", spec.encode())
    (job,) = wait_until(lambda: jobs_of(adapters, "acme"), what="upload job")
    wait_status(adapters, job.job_id, JobStatus.DISPATCHED)
    finish(adapters, job)
    bucket = adapters.storage.bucket_name("results")
    name = "uploads/tenants/acme/in/job.json.result.json"
    wait_until(lambda: adapters.storage.stat(bucket, name), what="upload summary")
    assert json.loads(adapters.storage.get(bucket, name))["job_id"] == job.job_id


# ---- sweeper ---------------------------------------------------------------------------------


def events_reasons(adapters: Adapters, job_id: str) -> list[str]:
    return [
        str(e.data.get("reason")) for e in adapters.jobs.list_events(job_id) if e.data.get("reason")
    ]


def test_sweeper_requeues_an_expired_lease_and_the_job_is_dispatched_again(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    job = create_job(adapters, fake_worker, max_attempts=2)
    adapters.jobs.claim(job.job_id, worker_id="ghost", lease_s=1)
    time.sleep(1.2)
    sweep(adapters)  # the stack's scheduled sweep may get there first; the outcome is the same
    again = wait_status(adapters, job.job_id, JobStatus.DISPATCHED)
    assert again.attempt == 1
    assert "lease expired" in events_reasons(adapters, job.job_id)


def test_sweeper_fails_a_job_whose_lease_expired_on_its_last_attempt(
    adapters: Adapters, fake_worker: FakeServer
) -> None:
    job = create_job(adapters, fake_worker, max_attempts=1)
    adapters.jobs.claim(job.job_id, worker_id="ghost", lease_s=1)
    time.sleep(1.2)
    sweep(adapters)
    failed = wait_status(adapters, job.job_id, JobStatus.FAILED)
    assert failed.error is not None
    assert failed.error.code == "worker-lost"
    assert "no attempts left" in failed.error.message


def test_sweeper_redispatches_a_stale_dispatch(adapters: Adapters, fake_worker: FakeServer) -> None:
    job = create_job(adapters, fake_worker)
    later = datetime.now(UTC) + timedelta(seconds=adapters.settings.dispatch_stale_seconds + 1)
    summary = sweep(adapters, now=later)
    assert summary.redispatched == [job.job_id]
    fake_worker.wait_for(lambda reqs: len([r for r in reqs if job.job_id in r.path]) >= 2)
    again = wait_status(adapters, job.job_id, JobStatus.DISPATCHED)
    assert again.next_seq - 1 > job.next_seq - 1  # a new dispatch transition, a new task id
    # The fresh dispatch is not stale: sweeping again leaves it alone.
    assert sweep(adapters, now=datetime.now(UTC)).redispatched == []


def test_sweeper_dispatches_a_queued_job_whose_event_was_lost(
    stack: Stack, adapters: Adapters, fake_worker: FakeServer
) -> None:
    # The dispatcher is down when the job is created: the creation event is not delivered
    # (the emulator, like a trigger without retries, does not send it again).
    dispatcher = stack.processes["fn-on_job_written"]
    dispatcher.stop()
    try:
        request = JobRequest(prompt="[[script:hello]] hi", session_id=affine_session())
        job = adapters.jobs.create_job(request, tenant="t1", channel=Channel.HTTP).job
    finally:
        dispatcher.start()
        dispatcher.wait_port("127.0.0.1", stack.ports["fn-on_job_written"], timeout_s=60)
    assert adapters.jobs.require_job(job.job_id).status is JobStatus.QUEUED
    assert sweep(adapters, now=datetime.now(UTC)).redispatched == []  # not stale yet

    later = datetime.now(UTC) + timedelta(seconds=adapters.settings.dispatch_stale_seconds + 1)
    assert job.job_id in sweep(adapters, now=later).redispatched
    wait_status(adapters, job.job_id, JobStatus.DISPATCHED)
    fake_worker.wait_for(lambda reqs: any(job.job_id in r.path for r in reqs))


def test_sweeper_times_out_overdue_jobs_and_flags_running_ones(
    stack: Stack, adapters: Adapters, fake_worker: FakeServer
) -> None:
    waiting = create_job(adapters, fake_worker, timeout_ms=1_000)
    running = create_job(adapters, fake_worker, timeout_ms=1_500)
    adapters.jobs.claim(running.job_id, worker_id="ghost", lease_s=60)
    time.sleep(1.6)
    resp = httpx.post(stack.urls["sweeper"], json={"source": "test"}, timeout=30)
    assert resp.status_code == 200
    assert "swept" in resp.json()
    for job_id in (waiting.job_id, running.job_id):
        done = wait_status(adapters, job_id, JobStatus.TIMED_OUT)
        assert done.cancel_requested
        assert done.error is not None
        assert done.error.code == "timed-out"
    # The worker holding the running one is told through its mailbox, in the same write.
    (signal,) = [s.to_dict() for s in adapters.jobs.cancel_signals("ghost").stream()]
    assert signal["job_id"] == running.job_id
    assert signal["reason"] == "deadline exceeded"
