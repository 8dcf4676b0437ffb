"""The log lines Cloud Logging log-based metrics count (terraform/modules/monitoring/main.tf).

The dead-letter and stuck-job alerts filter on `jsonPayload.log_metric` and extract `source`,
`reason` and `stuck`; these tests pin that shape as the JSON formatter writes it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from shared.log import LOG_METRIC_DEAD_LETTER, LOG_METRIC_FIELD, LOG_METRIC_SWEEP, JsonFormatter
from shared.services.deadletter import dead_letter_message
from shared.services.sweeper import sweep
from shared.services.uploads import StorageObject, handle_upload


def _metric_lines(caplog: pytest.LogCaptureFixture, value: str) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    entries = [json.loads(formatter.format(record)) for record in caplog.records]
    return [entry for entry in entries if entry.get(LOG_METRIC_FIELD) == value]


def test_field_names_match_the_terraform_filters() -> None:
    # terraform/modules/monitoring/main.tf filters on these literal values.
    assert LOG_METRIC_FIELD == "log_metric"
    assert LOG_METRIC_DEAD_LETTER == "dead_letter"
    assert LOG_METRIC_SWEEP == "sweep"


def test_dead_lettered_message_logs_source_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    published: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(topic: str, payload: bytes, attributes: dict[str, str]) -> str:
        published.append((topic, payload, attributes))
        return "dlq-1"

    adapters: Any = SimpleNamespace(publisher=SimpleNamespace(publish=publish))
    with caplog.at_level(logging.INFO):
        dead_letter_message(
            adapters,
            reason="invalid-json",
            detail="not JSON",
            payload=b"{",
            original_attributes={},
            original_message_id="m-1",
            source="pubsub",
        )
    assert [topic for topic, _, _ in published] == ["jobs_dlq"]
    (line,) = _metric_lines(caplog, LOG_METRIC_DEAD_LETTER)
    assert line["source"] == "pubsub"
    assert line["reason"] == "invalid-json"
    assert line["severity"] == "WARNING"


def test_rejected_upload_logs_a_dead_letter_line(caplog: pytest.LogCaptureFixture) -> None:
    written: list[str] = []

    def put(bucket: str, name: str, data: bytes, **_: object) -> None:
        written.append(name)

    storage = SimpleNamespace(bucket_name=lambda key: "uploads-bucket", put=put)
    adapters: Any = SimpleNamespace(storage=storage, settings=SimpleNamespace())
    obj = StorageObject(bucket="uploads-bucket", name="tenants/acme/notes.txt", generation=1)
    with caplog.at_level(logging.INFO):
        outcome = handle_upload(adapters, obj)
    assert outcome.status == "rejected"
    assert written == ["_errors/tenants/acme/notes.txt.error.json"]
    (line,) = _metric_lines(caplog, LOG_METRIC_DEAD_LETTER)
    assert line["source"] == "upload"
    assert line["reason"] == "validation-error"


def test_every_sweep_logs_its_stuck_count_even_zero(caplog: pytest.LogCaptureFixture) -> None:
    store = SimpleNamespace(
        query_by_status=lambda *args, **kwargs: [],
        expired_leases=lambda *args, **kwargs: [],
    )
    adapters: Any = SimpleNamespace(jobs=store, settings=SimpleNamespace(dispatch_stale_seconds=60))
    with caplog.at_level(logging.INFO):
        summary = sweep(adapters, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert summary.stuck == 0
    (line,) = _metric_lines(caplog, LOG_METRIC_SWEEP)
    assert line["stuck"] == 0
    assert isinstance(line["stuck"], int)
