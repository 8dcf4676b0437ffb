"""Dead-lettering of inputs that can never succeed: recorded with a reason, then acknowledged."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shared.log import LOG_METRIC_DEAD_LETTER, LOG_METRIC_FIELD
from shared.metrics import DEAD_LETTERED

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)
MAX_ATTRIBUTE_BYTES = 1024  # Pub/Sub's limit on one attribute value


def _clip(value: str, limit: int = MAX_ATTRIBUTE_BYTES) -> str:
    raw = value.encode()
    if len(raw) <= limit:
        return value
    return raw[: limit - 3].decode(errors="ignore") + "..."


def dead_letter_message(
    adapters: Adapters,
    *,
    reason: str,
    detail: str,
    payload: bytes,
    original_attributes: Mapping[str, str],
    original_message_id: str,
    source: str = "pubsub",
) -> str:
    """Republish the original payload to codex-jobs-dlq with why it was rejected.

    Raises DependencyUnavailable when the DLQ topic cannot be reached, so the caller lets the
    original message be redelivered instead of losing it.
    """
    attributes = {
        "reason": reason,
        "error": _clip(detail),
        "source": source,
        "original_message_id": original_message_id,
        "original_attributes": _clip(json.dumps(dict(original_attributes), sort_keys=True)),
    }
    message_id = adapters.publisher.publish("jobs_dlq", payload, attributes)
    DEAD_LETTERED.labels(source=source, reason=reason).inc()
    log.warning(
        "message dead-lettered",
        extra={
            "fields": {
                LOG_METRIC_FIELD: LOG_METRIC_DEAD_LETTER,
                "source": source,
                "reason": reason,
                "detail": detail[:500],
                "original_message_id": original_message_id,
                "dlq_message_id": message_id,
            }
        },
    )
    return message_id
