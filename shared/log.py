"""JSON-lines logging in the shape Cloud Logging understands.

Each record carries `severity`, `message`, the logger name and, when known, the trace
(`logging.googleapis.com/trace`) and correlation ids (job id, event id) from context variables,
so one job can be followed across functions, the API and the worker.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
_span_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("span_id", default=None)
_fields: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "log_fields", default=None
)

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
_project_id = "codex-cloud-local"

# Log lines that Cloud Logging log-based metrics count (terraform/modules/monitoring): the field
# and its values are a contract with the metric filters there, as metric names in
# shared/metrics.py are with monitoring/. The functions that write these lines are not scraped
# by Prometheus, so their alerts are built on the log lines instead.
LOG_METRIC_FIELD = "log_metric"
LOG_METRIC_DEAD_LETTER = "dead_letter"  # one line per input rejected permanently (source, reason)
LOG_METRIC_SWEEP = "sweep"  # one line per sweep (stuck: jobs found stuck in that sweep)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        trace = _trace_id.get()
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{_project_id}/traces/{trace}"
            entry["trace_id"] = trace
        span = _span_id.get()
        if span:
            entry["logging.googleapis.com/spanId"] = span
        entry.update(_fields.get() or {})
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", project_id: str | None = None) -> None:
    """Send every log record to stderr as one JSON line (idempotent)."""
    global _project_id
    if project_id:
        _project_id = project_id
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    # Client libraries log every request at INFO; that drowns the service's own lines.
    for noisy in ("httpx", "httpcore", "urllib3", "google", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def parse_trace_header(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Trace and span ids from `traceparent` (W3C) or `X-Cloud-Trace-Context`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    traceparent = lowered.get("traceparent")
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) >= 3 and len(parts[1]) == 32:
            return parts[1], parts[2]
    cloud = lowered.get("x-cloud-trace-context")
    if cloud:
        trace, _, rest = cloud.partition("/")
        span = rest.split(";", 1)[0] or None
        return (trace or None), span
    return None, None


@contextlib.contextmanager
def log_context(
    *, trace_id: str | None = None, span_id: str | None = None, **fields: Any
) -> Iterator[None]:
    """Attach a trace and correlation fields to every record logged inside the block."""
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = []
    if trace_id:
        tokens.append((_trace_id, _trace_id.set(trace_id)))
    if span_id:
        tokens.append((_span_id, _span_id.set(span_id)))
    if fields:
        merged = {**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
        tokens.append((_fields, _fields.set(merged)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_trace_id() -> str | None:
    return _trace_id.get()
