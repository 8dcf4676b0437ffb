"""Each trigger path delivers a production-shaped CloudEvent to a function running under
functions-framework (the probe function records exactly what it receives)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as storage
from google.cloud import firestore
from google.events.cloud.firestore import DocumentEventData

from devstack.stack import Stack


def _probe_events(stack: Stack, event_type: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stack.probe_log.exists():
            lines = stack.probe_log.read_text().splitlines()
            found = [json.loads(line) for line in lines]
            found = [e for e in found if e["attributes"]["type"] == event_type]
            if found:
                return found
        time.sleep(0.05)
    raise AssertionError(f"no {event_type} event reached the function")


def test_pubsub_publish_arrives_as_message_published(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    project = stack.options.project
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(project, stack.topology.topic("jobs"))
    message_id = publisher.publish(topic, b'{"prompt": "hi"}', idempotency_key="k-1").result()

    (event,) = _probe_events(stack, "google.cloud.pubsub.topic.v1.messagePublished")
    attrs = event["attributes"]
    assert attrs["source"] == f"//pubsub.googleapis.com/projects/{project}/topics/codex-jobs"
    assert attrs["id"] == message_id
    assert attrs["specversion"] == "1.0"
    message = event["data"]["message"]
    assert base64.b64decode(message["data"]) == b'{"prompt": "hi"}'
    assert message["attributes"] == {"idempotency_key": "k-1"}
    assert message["messageId"] == message["message_id"] == message_id
    assert event["data"]["subscription"].startswith(f"projects/{project}/subscriptions/")


def test_upload_finalize_arrives_as_storage_object_finalized(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    bucket = stack.topology.bucket("uploads")
    blob = storage.Client().bucket(bucket).blob("team-a/job.json")
    blob.upload_from_string(b'{"prompt": "from a file"}', content_type="application/json")

    (event,) = _probe_events(stack, "google.cloud.storage.object.v1.finalized")
    attrs = event["attributes"]
    assert attrs["source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    assert attrs["subject"] == "objects/team-a/job.json"
    data = event["data"]
    assert data["bucket"] == bucket
    assert data["name"] == "team-a/job.json"
    assert data["generation"] == str(blob.generation)
    assert data["contentType"] == "application/json"
    assert data["size"] == str(len(b'{"prompt": "from a file"}'))


def test_objects_in_other_buckets_do_not_trigger_the_upload_function(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    storage.Client().bucket(stack.topology.bucket("outputs")).blob("x.txt").upload_from_string(b"x")
    time.sleep(0.5)
    assert not stack.probe_log.exists() or "finalized" not in stack.probe_log.read_text()


def test_firestore_write_arrives_as_document_written_protobuf(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    project = stack.options.project
    client = firestore.Client(project=project)
    client.collection("jobs").document("job-42").set({"status": "queued", "attempt": 0})

    # Other jobs (e.g. made by the ingest function from an earlier test's message) may be
    # written meanwhile: pick this document's event.
    deadline = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        events = _probe_events(stack, "google.cloud.firestore.document.v1.written")
        mine = [e for e in events if e["attributes"]["subject"] == "documents/jobs/job-42"]
    assert mine, "no event for jobs/job-42"
    event = mine[0]
    attrs = event["attributes"]
    assert attrs["source"] == f"//firestore.googleapis.com/projects/{project}/databases/(default)"
    assert attrs["subject"] == "documents/jobs/job-42"
    assert attrs["datacontenttype"] == "application/protobuf"
    decoded = DocumentEventData.deserialize(base64.b64decode(event["data_base64"]))
    assert decoded.value.name.endswith("/documents/jobs/job-42")
    assert decoded.value.fields["status"].string_value == "queued"
    assert decoded.value.fields["attempt"].integer_value == 0
