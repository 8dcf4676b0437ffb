"""The local Eventarc stand-in must produce production-shaped CloudEvents."""

from __future__ import annotations

import base64
import json

from devstack.eventarc import (
    FIRESTORE_WRITTEN_TYPE,
    firestore_cloudevent,
    pubsub_cloudevent,
    storage_cloudevent,
)


def test_pubsub_push_becomes_message_published_with_both_field_spellings() -> None:
    envelope = {
        "message": {
            "data": base64.b64encode(b"{}").decode(),
            "attributes": {"a": "1"},
            "messageId": "42",
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }
    headers, body = pubsub_cloudevent("p", "codex-jobs", envelope)
    assert headers["ce-type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert headers["ce-source"] == "//pubsub.googleapis.com/projects/p/topics/codex-jobs"
    assert headers["ce-id"] == "42"
    data = json.loads(body)
    assert data["message"]["message_id"] == data["message"]["messageId"] == "42"
    assert data["message"]["attributes"] == {"a": "1"}
    assert data["subscription"] == "projects/p/subscriptions/s"


def test_storage_notification_becomes_finalized_event_with_object_resource() -> None:
    obj = {
        "name": "drop/spec.json",
        "bucket": "codex-uploads",
        "generation": "17",
        "size": "3",
        "contentType": "application/json",
    }
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(obj).encode()).decode(),
            "attributes": {
                "eventType": "OBJECT_FINALIZE",
                "bucketId": "codex-uploads",
                "objectId": "drop/spec.json",
                "objectGeneration": "17",
                "eventTime": "2026-01-01T00:00:00Z",
            },
            "messageId": "9",
        }
    }
    event = storage_cloudevent(envelope)
    assert event is not None
    headers, body = event
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == "//storage.googleapis.com/projects/_/buckets/codex-uploads"
    assert headers["ce-subject"] == "objects/drop/spec.json"
    data = json.loads(body)
    assert data["generation"] == "17"
    assert data["metageneration"] == "1"
    assert data["kind"] == "storage#object"


def test_storage_events_other_than_finalize_are_dropped() -> None:
    envelope = {"message": {"data": "e30=", "attributes": {"eventType": "OBJECT_DELETE"}}}
    assert storage_cloudevent(envelope) is None


def test_firestore_emulator_body_is_decoded_and_source_fixed() -> None:
    raw = b"\x0a\x03abc"
    headers, body = firestore_cloudevent(
        {
            "ce-type": FIRESTORE_WRITTEN_TYPE,
            "ce-source": "//firestore.googleapis.com/projects/projects/p/databases/(default)",
            "content-type": "application/json",
            "host": "x",
        },
        base64.b64encode(raw),
    )
    assert body == raw
    assert headers["ce-source"] == "//firestore.googleapis.com/projects/p/databases/(default)"
    assert headers["content-type"] == "application/protobuf"
    assert "host" not in headers
