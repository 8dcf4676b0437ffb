"""The fast reliability subset `make test` runs: a small burst through every channel with every
Pub/Sub message delivered twice, and the API with Redis down. The heavy versions are in
test_load_faults.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from devstack.provision import add_push_subscription
from devstack.stack import Stack
from shared.adapters import Adapters
from tests.reliability.conftest import Scenario
from tests.reliability.support import (
    TRIVIAL,
    Submitted,
    codex_runs,
    job_count,
    new_key,
    submit_http,
    submit_pubsub,
    submit_upload,
    wait_terminal,
)

pytestmark = [pytest.mark.reliability_smoke, pytest.mark.timeout(240)]


@contextlib.contextmanager
def duplicate_pubsub_delivery(stack: Stack, adapters: Adapters) -> Iterator[None]:
    """A second push subscription on the jobs topic to the same ingest endpoint: every message
    reaches ingest twice with the same message id, as a Pub/Sub redelivery would."""
    topic = stack.topology.topic("jobs")
    name = "reliability-duplicate-ingest"
    add_push_subscription(adapters.settings, topic, name, f"{stack.urls['eventarc']}/pubsub/ingest")
    try:
        yield
    finally:
        subscriber = pubsub_v1.SubscriberClient()
        try:
            with contextlib.suppress(gexc.NotFound):
                subscriber.delete_subscription(
                    request={
                        "subscription": subscriber.subscription_path(stack.options.project, name)
                    }
                )
        finally:
            subscriber.close()


def test_burst_through_every_channel_with_double_delivery(
    stack: Stack, adapters: Adapters, scenario: Scenario
) -> None:
    per_channel = 6
    scenario.set(
        injected=f"{per_channel} trivial jobs x HTTP/Pub/Sub/upload; Pub/Sub delivered twice",
        expected="each job terminal once, counts match, one codex run per job",
    )
    key, _ = new_key(adapters)
    submitted = Submitted()
    with (
        duplicate_pubsub_delivery(stack, adapters),
        httpx.Client(base_url=stack.urls["api"], headers={"X-API-KEY": key}, timeout=60) as c,
    ):
        for i in range(per_channel):
            resp = submit_http(c, f"{TRIVIAL} http {i}")
            assert resp.status_code == 202, resp.text
            submitted.add("http", resp.json()["job_id"])
            submitted.add("pubsub", submit_pubsub(adapters, f"{TRIVIAL} pubsub {i}"))
            submitted.add("upload", submit_upload(adapters, f"{TRIVIAL} upload {i}"))
        done, stuck = wait_terminal(adapters, submitted.all, timeout_s=180)
        # Let duplicate deliveries that were still in flight land before counting.
        time.sleep(2)
    statuses = {job.status.value for job in done.values()}
    channels = {ch: sum(done[j].channel.value == ch for j in ids if j in done)
                for ch, ids in submitted.by_channel.items()}  # fmt: skip
    runs = {j: codex_runs(adapters, j) for j in done}
    extra_runs = {j: dict(r) for j, r in runs.items() if sum(r.values()) != 1}
    total = job_count(stack, adapters)
    scenario.observe(
        f"{len(done)}/{len(submitted.all)} terminal {sorted(statuses)}, per channel {channels}, "
        f"jobs in store {total}, jobs with !=1 codex run {len(extra_runs)}, stuck {len(stuck)}"
    )
    assert stuck == []
    assert statuses == {"succeeded"}
    assert channels == {ch: per_channel for ch in ("http", "pubsub", "upload")}
    assert total == len(submitted.all)
    assert extra_runs == {}


def test_api_keeps_serving_with_redis_down(
    stack: Stack, adapters: Adapters, scenario: Scenario
) -> None:
    scenario.set(
        injected="Redis stopped during submissions",
        expected="202 (local limiter) or 429/503, never 5xx other than 503; /ready reports redis",
    )
    key, _ = new_key(adapters)
    redis = stack.processes["redis"]
    statuses: list[int] = []
    ready: dict[str, object] = {}
    redis.stop()
    try:
        with httpx.Client(base_url=stack.urls["api"], headers={"X-API-KEY": key}, timeout=60) as c:
            for i in range(10):
                statuses.append(submit_http(c, f"{TRIVIAL} redis-down {i}").status_code)
            ready = c.get("/ready").json()
    finally:
        redis.start()
        redis.wait_port("127.0.0.1", stack.ports["redis"], timeout_s=30)
    scenario.observe(f"statuses {sorted(set(statuses))}, /ready checks {ready.get('checks')}")
    assert all(s in (202, 429, 503) for s in statuses), statuses
    assert 202 in statuses  # the in-process limiter keeps the API useful


def test_events_carry_their_attempt_on_the_fast_path(
    stack: Stack, adapters: Adapters, scenario: Scenario
) -> None:
    """Regression: events appended with a cursor (the worker's hot path) were stamped attempt 0,
    so a retried job's two codex runs looked like one attempt running codex twice."""
    from shared.jobstore import EventCursor
    from shared.models import Channel, EventDraft, JobRequest, JobStatus, MessageType

    scenario.set(injected="append events with a cursor after a claim", expected="attempt 1")
    store = adapters.jobs
    job = store.create_job(JobRequest(prompt="x"), tenant="rel", channel=Channel.HTTP).job
    store.transition(job.job_id, JobStatus.DISPATCHED)
    # Both ways a worker gets its cursor: from the claim itself, or fresh (first append reads).
    cursor = EventCursor()
    store.claim(job.job_id, worker_id="rel-worker", lease_s=30, cursor=cursor)
    fresh = EventCursor()
    draft = EventDraft(message_type=MessageType.PROGRESS, data={"n": 1})
    first = store.append_events(job.job_id, [draft], cursor=cursor)
    second = store.append_events(job.job_id, [draft, draft], cursor=cursor)
    third = store.append_events(job.job_id, [draft], cursor=fresh)
    fourth = store.append_events(job.job_id, [draft], cursor=fresh)
    attempts = [e.attempt for e in first + second + third + fourth]
    scenario.observe(f"attempts {attempts}")
    assert attempts == [1, 1, 1, 1, 1]
