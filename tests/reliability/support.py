"""Submitting through every channel and checking what came of it, for the reliability suite."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from devstack.stack import Stack
from shared.adapters import Adapters
from shared.apikeys import create_key
from shared.jobstore import job_id_for_key
from shared.models import JobRecord

TRIVIAL = "[[script:trivial]]"
# A job's timeout runs from its creation, so under load it must cover the wait in the queue;
# `long_running: false` keeps such jobs on the short (Cloud Tasks) path all the same.
JOB_FIELDS = {"timeout_ms": 1_800_000, "long_running": False}
PUBSUB_TENANT = "default"  # the Pub/Sub and upload channels' default tenant


@dataclass
class Submitted:
    """Job ids per channel, as the submitter knows them (before any job exists)."""

    by_channel: dict[str, list[str]] = field(default_factory=dict)

    def add(self, channel: str, job_id: str) -> None:
        self.by_channel.setdefault(channel, []).append(job_id)

    @property
    def all(self) -> list[str]:
        return [j for ids in self.by_channel.values() for j in ids]


def new_key(adapters: Adapters, tenant: str | None = None) -> tuple[str, str]:
    tenant = tenant or f"rel-{uuid.uuid4().hex[:8]}"
    created = create_key(
        adapters.firestore,
        adapters.settings,
        tenant=tenant,
        name="reliability",
        tier="PREMIUM",
        scopes=("read", "write"),
        rate_limit_per_minute=1_000_000,
    )
    return created.key, tenant


def submit_http(client: httpx.Client, prompt: str) -> httpx.Response:
    return client.post("/v2/exec", json={"prompt": prompt, "mode": "async", **JOB_FIELDS})


def submit_pubsub(adapters: Adapters, prompt: str) -> str:
    key = f"rel-{uuid.uuid4().hex}"
    adapters.publisher.publish_json(
        "jobs", {"prompt": prompt, **JOB_FIELDS}, {"idempotency_key": key}
    )
    return job_id_for_key(PUBSUB_TENANT, key)


def submit_upload(adapters: Adapters, prompt: str, name: str | None = None) -> str:
    bucket = adapters.storage.bucket_name("uploads")
    name = name or f"rel/{uuid.uuid4().hex}.json"
    body = json.dumps({"prompt": prompt, **JOB_FIELDS}).encode()
    info = adapters.storage.put(bucket, name, body)
    return job_id_for_key(PUBSUB_TENANT, f"gcs:{bucket}/{name}#{info.generation}")


def wait_terminal(
    adapters: Adapters, job_ids: Iterable[str], *, timeout_s: float
) -> tuple[dict[str, JobRecord], list[str]]:
    """Poll until every job exists and is terminal, or the time is up; (finished, unfinished)."""
    pending = set(job_ids)
    done: dict[str, JobRecord] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            job = adapters.jobs.get_job(job_id)
            if job is not None and job.status.terminal:
                done[job_id] = job
                pending.discard(job_id)
        if pending:
            time.sleep(0.5)
    return done, sorted(pending)


def codex_runs(adapters: Adapters, job_id: str) -> Counter[int]:
    """`thread.started` events per attempt: one per codex run that reached the model."""
    runs: Counter[int] = Counter()
    for event in adapters.jobs.list_events(job_id, limit=1000):
        if event.data.get("event") == "thread.started":
            runs[event.attempt] += 1
    return runs


def job_count(stack: Stack, adapters: Adapters) -> int:
    collection = adapters.firestore.collection(stack.topology.firestore.jobs_collection)
    result = collection.count().get()  # type: ignore[no-untyped-call]
    return int(result[0][0].value)


def error_report(adapters: Adapters, name: str, *, timeout_s: float = 20) -> dict[str, object]:
    """The `_errors/{name}.error.json` report on_upload writes for a bad upload."""
    bucket = adapters.storage.bucket_name("uploads")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        path = f"_errors/{name}.error.json"
        if adapters.storage.stat(bucket, path) is not None:
            report: dict[str, object] = json.loads(adapters.storage.get(bucket, path))
            return report
        time.sleep(0.2)
    raise AssertionError(f"no error report for {name}")
