"""Per-process plumbing for the function handlers: settings, logging and adapters built once,
and correlation ids taken from the trigger (no framework imports here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from shared.adapters import Adapters
from shared.log import configure_logging, log_context, parse_trace_header
from shared.settings import get_settings


@lru_cache(maxsize=1)
def process_adapters() -> Adapters:
    """Created on first use (never at import time), then reused by every invocation."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.project_id)
    return Adapters(settings)


@contextlib.contextmanager
def invocation(
    attributes: Mapping[str, Any], headers: Mapping[str, str] | None = None, **fields: Any
) -> Iterator[None]:
    """Log context for one invocation: the trace from `traceparent` (CloudEvent extension or
    HTTP header) plus the event id and any correlation fields."""
    carrier: dict[str, str] = {k: str(v) for k, v in (headers or {}).items()}
    if attributes.get("traceparent"):
        carrier["traceparent"] = str(attributes["traceparent"])
    trace_id, span_id = parse_trace_header(carrier)
    with log_context(trace_id=trace_id, span_id=span_id, event_id=attributes.get("id"), **fields):
        yield
