"""Pub/Sub ingress: a message on codex-jobs becomes one job (docs/contracts/jobs-topic.md).

Permanent problems (bad JSON, schema violation, unknown tenant, too large, a reused
idempotency key) are dead-lettered with the reason and acknowledged; dependency outages are
raised so Pub/Sub redelivers (the subscription's dead-letter policy is the backstop).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from shared.errors import Conflict, InvalidInput, PermanentError
from shared.models import Channel, Priority
from shared.services.deadletter import dead_letter_message
from shared.services.jobs import create_channel_job, parse_request
from shared.services.tenants import TenantLookup, make_tenant_lookup

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "job-message.schema.json"

Reason = Literal[
    "too_large",
    "bad_json",
    "schema_violation",
    "invalid_request",
    "unknown_tenant",
    "idempotency_conflict",
]


class PubSubMessage(BaseModel):
    """The parts of a Pub/Sub message (as Eventarc delivers it) that ingest uses."""

    data: bytes = b""
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str
    publish_time: datetime | None = None
    subscription: str = ""


@dataclass(frozen=True)
class IngestOutcome:
    status: Literal["created", "duplicate", "dead_lettered"]
    job_id: str | None = None
    reason: Reason | None = None
    detail: str | None = None


class Rejected(PermanentError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason


@lru_cache(maxsize=1)
def message_validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def decode_body(msg: PubSubMessage, max_bytes: int) -> dict[str, Any]:
    """Size, JSON and schema checks; the attribute `priority` fills in a missing body field."""
    if len(msg.data) > max_bytes:
        raise Rejected("too_large", f"message body is {len(msg.data)} bytes (limit {max_bytes})")
    try:
        body = json.loads(msg.data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected("bad_json", f"body is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise Rejected("bad_json", "body is nested too deeply") from None
    if not isinstance(body, dict):
        raise Rejected("bad_json", "body must be a JSON object")
    priority = msg.attributes.get("priority")
    if priority and "priority" not in body:
        if priority not in {p.value for p in Priority}:
            raise Rejected("schema_violation", f"attribute priority={priority!r} is not valid")
        body["priority"] = priority
    try:
        errors = sorted(message_validator().iter_errors(body), key=lambda e: list(e.path))
    except RecursionError:
        # Parsed, but too deep for the validator's walk (metadata is free-form).
        raise Rejected("schema_violation", "body is nested too deeply") from None
    if errors:
        detail = "; ".join(
            f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors[:5]
        )
        raise Rejected("schema_violation", detail)
    return body


def ingest_message(
    adapters: Adapters, msg: PubSubMessage, *, tenant_lookup: TenantLookup | None = None
) -> IngestOutcome:
    settings = adapters.settings
    lookup = tenant_lookup or make_tenant_lookup(adapters)
    tenant = msg.attributes.get("tenant") or settings.pubsub_default_tenant
    try:
        body = decode_body(msg, settings.pubsub_max_message_bytes)
        try:
            request = parse_request(body)
        except InvalidInput as exc:
            raise Rejected("invalid_request", exc.detail) from None
        if not lookup(tenant):
            raise Rejected("unknown_tenant", f"tenant {tenant!r} is not known")
        # Attribute first, then the body's own key, then the message id: a redelivery of the
        # same message (same id) always finds the job it created.
        key = msg.attributes.get("idempotency_key") or request.idempotency_key or msg.message_id
        source = {
            "message_id": msg.message_id,
            "subscription": msg.subscription,
            "publish_time": msg.publish_time.isoformat() if msg.publish_time else None,
        }
        try:
            outcome = create_channel_job(
                adapters,
                request,
                tenant=tenant,
                channel=Channel.PUBSUB,
                idempotency_key=key,
                source=source,
            )
        except Conflict as exc:
            raise Rejected("idempotency_conflict", exc.detail) from None
        except InvalidInput as exc:
            # Checks that need the tenant (a workspace archive that is not its upload).
            raise Rejected("invalid_request", exc.detail) from None
    except Rejected as rejected:
        dead_letter_message(
            adapters,
            reason=rejected.reason,
            detail=rejected.detail,
            payload=msg.data,
            original_attributes=msg.attributes,
            original_message_id=msg.message_id,
        )
        return IngestOutcome("dead_lettered", reason=rejected.reason, detail=rejected.detail)
    status: Literal["created", "duplicate"] = "created" if outcome.created else "duplicate"
    log.info(
        "pubsub job ingested",
        extra={"fields": {"job_id": outcome.job.job_id, "outcome": status, "tenant": tenant}},
    )
    return IngestOutcome(status, job_id=outcome.job.job_id)
