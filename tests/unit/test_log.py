from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.log import JsonFormatter, log_context, parse_trace_header


def _format(record_msg: str, **extra: object) -> dict[str, Any]:
    logger = logging.getLogger("t")
    record = logger.makeRecord(
        "t", logging.WARNING, __file__, 1, record_msg, (), None, extra=extra or None
    )
    parsed: dict[str, Any] = json.loads(JsonFormatter().format(record))
    return parsed


def test_lines_carry_severity_message_and_correlation_fields() -> None:
    with log_context(trace_id="a" * 32, span_id="7", job_id="job-1"):
        entry = _format("hello world", fields={"attempt": 2})
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hello world"
    assert entry["logging.googleapis.com/trace"].endswith("/traces/" + "a" * 32)
    assert entry["logging.googleapis.com/spanId"] == "7"
    assert entry["job_id"] == "job-1"
    assert entry["attempt"] == 2


def test_context_does_not_leak_after_the_block() -> None:
    with log_context(trace_id="b" * 32, job_id="j"):
        pass
    entry = _format("x")
    assert "job_id" not in entry
    assert "logging.googleapis.com/trace" not in entry


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"traceparent": "00-" + "c" * 32 + "-00f067aa0ba902b7-01"},
            ("c" * 32, "00f067aa0ba902b7"),
        ),
        ({"X-Cloud-Trace-Context": "d" * 32 + "/123;o=1"}, ("d" * 32, "123")),
        ({}, (None, None)),
    ],
)
def test_trace_headers_are_parsed(headers: dict[str, str], expected: tuple[object, object]) -> None:
    assert parse_trace_header(headers) == expected
