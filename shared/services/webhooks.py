"""Signed webhook delivery (contract: docs/contracts/webhooks.md).

Every attempt POSTs the same JSON body with:
  X-Codex-Signature: v1=<hex hmac-sha256(secret, f"{timestamp}.{body}")>
  X-Codex-Timestamp: unix seconds of this attempt
  X-Codex-Delivery:  a delivery id, identical across retries (receivers dedup on it)
  X-Codex-Event:     job.<status>
Retries use exponential backoff implemented here (not the queue's retry config, which the
local Tasks emulator ignores): a couple of quick in-process attempts inside on_job_written,
then one Cloud Task per further attempt on the `webhooks` queue, scheduled at the backoff time,
calling the control function's delivery route. URLs resolving to private, loopback,
link-local or otherwise non-public addresses are refused unless `webhook_allow_private`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from shared.errors import PermanentError, RetryableError
from shared.metrics import WEBHOOK_DELIVERIES
from shared.models import JobRecord
from shared.services.common import utcnow

if TYPE_CHECKING:
    from shared.adapters import Adapters

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Codex-Signature"
TIMESTAMP_HEADER = "X-Codex-Timestamp"
DELIVERY_HEADER = "X-Codex-Delivery"
EVENT_HEADER = "X-Codex-Event"
DEFAULT_TOLERANCE_S = 300
DELIVERY_ROUTE = "/internal/webhook-delivery"

Resolver = Callable[[str, int], list[str]]
Outcome = Literal["delivered", "retry", "failed"]


class WebhookRefused(PermanentError):
    code = "webhook-refused"
    title = "Webhook URL refused"


class WebhookHostUnresolved(RetryableError):
    """The resolver failed for now (a timeout, a temporary DNS failure): worth another try."""

    code = "webhook-unresolved"
    title = "Webhook host did not resolve"


# Answers that say the name has no address at all; any other resolver failure may pass.
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


# ---- signing ---------------------------------------------------------------------------------


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Receiver-side check: a `v1=` signature over `{timestamp}.{body}` made with `secret`,
    with the timestamp within `tolerance_s` of now (replay protection)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))


# ---- SSRF guard ------------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """Refuse URLs that are not http(s) or resolve (any of their addresses) to a non-public IP.

    Every resolved address is checked, so a name with one public and one private record is
    refused. Residual risk (documented): DNS may answer differently at connect time.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook URL must be http(s) with a host: {url!r}")
    if parts.username or parts.password:
        raise WebhookRefused("webhook URL must not carry credentials")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(parts.hostname, port)
    except UnicodeError as exc:
        raise WebhookRefused(
            f"webhook host {parts.hostname!r} is not a valid name: {exc}"
        ) from None
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise WebhookRefused(
                f"webhook host {parts.hostname!r} does not resolve: {exc}"
            ) from None
        raise WebhookHostUnresolved(f"resolving {parts.hostname!r} failed: {exc}") from None
    except OSError as exc:
        raise WebhookHostUnresolved(f"resolving {parts.hostname!r} failed: {exc}") from None
    if not addresses:
        raise WebhookRefused(f"webhook host {parts.hostname!r} has no addresses")
    for address in addresses:
        try:
            public = is_public_address(address)
        except ValueError:
            public = False
        if not public:
            raise WebhookRefused(
                f"webhook host {parts.hostname!r} resolves to non-public address {address}"
            )


# ---- payloads and attempts -------------------------------------------------------------------


def delivery_id(job_id: str, status: str) -> str:
    return "dlv_" + hashlib.sha256(f"{job_id}:{status}".encode()).hexdigest()[:24]


def webhook_body(summary: Mapping[str, Any], status: str) -> bytes:
    """Deterministic bytes: every attempt of one delivery sends the same body."""
    payload = {
        "event": f"job.{status}",
        "delivery_id": delivery_id(str(summary["job_id"]), status),
        "job": summary,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def secret_for(job: JobRecord) -> str | None:
    if job.request.webhook is not None and job.request.webhook.secret:
        return job.request.webhook.secret
    return job.webhook_secret


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before attempt `attempt + 1` (attempt counts from 1): base·2^(attempt-1), capped."""
    return float(min(max_s, base_s * (2 ** max(0, attempt - 1))))


def attempt_once(
    url: str,
    body: bytes,
    *,
    secret: str,
    event: str,
    delivery: str,
    timeout_s: float,
    allow_private: bool,
    resolver: Resolver = system_resolver,
) -> Outcome:
    try:
        check_url(url, allow_private=allow_private, resolver=resolver)
    except WebhookHostUnresolved as exc:
        log.info(
            "webhook host did not resolve", extra={"fields": {"url": url, "detail": exc.detail}}
        )
        return "retry"
    except WebhookRefused as exc:
        log.warning("webhook refused", extra={"fields": {"url": url, "detail": exc.detail}})
        return "failed"
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "codex-cloud-webhooks/1",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery,
        EVENT_HEADER: event,
    }
    try:
        # Redirects are not followed: a redirect could point at an address we refused.
        resp = httpx.post(
            url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        log.info("webhook attempt failed", extra={"fields": {"url": url, "error": str(exc)}})
        return "retry"
    if 200 <= resp.status_code < 300:
        return "delivered"
    if resp.status_code in (408, 409, 425, 429) or resp.status_code >= 500:
        return "retry"
    log.warning(
        "webhook receiver rejected the delivery",
        extra={"fields": {"url": url, "status": resp.status_code}},
    )
    return "failed"


class WebhookAttempt(BaseModel):
    """Body of the Cloud Task that performs one scheduled delivery attempt."""

    job_id: str
    status: str
    attempt: int


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "scheduled", "gave_up", "skipped"]
    attempts: int
    next_attempt: int | None = None


def deliver(
    adapters: Adapters,
    job: JobRecord,
    summary: Mapping[str, Any],
    *,
    first_attempt: int = 1,
    max_inline: int | None = None,
    resolver: Resolver = system_resolver,
) -> DeliveryResult:
    """Try the webhook now (bounded attempts and time), then hand the rest to Cloud Tasks."""
    s = adapters.settings
    if job.request.webhook is None:
        return DeliveryResult("skipped", 0)
    secret = secret_for(job)
    if not secret:
        log.error(
            "job has a webhook but no secret; not delivering",
            extra={"fields": {"job_id": job.job_id}},
        )
        WEBHOOK_DELIVERIES.labels(outcome="gave_up").inc()
        return DeliveryResult("gave_up", 0)
    status = job.status.value
    body = webhook_body(summary, status)
    delivery = delivery_id(job.job_id, status)
    inline = max_inline if max_inline is not None else s.webhook_inline_attempts
    started = time.monotonic()
    attempt = first_attempt
    tried = 0
    while True:
        outcome = attempt_once(
            job.request.webhook.url,
            body,
            secret=secret,
            event=f"job.{status}",
            delivery=delivery,
            timeout_s=s.webhook_timeout_s,
            allow_private=s.webhook_allow_private,
            resolver=resolver,
        )
        tried += 1
        if outcome == "delivered":
            WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
            log.info(
                "webhook delivered", extra={"fields": {"job_id": job.job_id, "attempt": attempt}}
            )
            return DeliveryResult("delivered", tried)
        if outcome == "failed" or attempt >= s.webhook_max_attempts:
            WEBHOOK_DELIVERIES.labels(outcome="gave_up").inc()
            log.warning(
                "webhook given up", extra={"fields": {"job_id": job.job_id, "attempt": attempt}}
            )
            return DeliveryResult("gave_up", tried)
        WEBHOOK_DELIVERIES.labels(outcome="retry").inc()
        delay = backoff_s(attempt, s.webhook_backoff_base_s, s.webhook_backoff_max_s)
        elapsed = time.monotonic() - started
        if tried >= inline or elapsed + delay > s.webhook_inline_budget_s:
            _schedule(adapters, job, status, attempt + 1, delay)
            return DeliveryResult("scheduled", tried, next_attempt=attempt + 1)
        time.sleep(delay)
        attempt += 1


def _schedule(
    adapters: Adapters, job: JobRecord, status: str, attempt: int, delay_s: float
) -> None:
    control = adapters.settings.control_url
    if not control:
        log.error(
            "webhook retry cannot be scheduled: CODEX_CLOUD_CONTROL_URL is not set",
            extra={"fields": {"job_id": job.job_id}},
        )
        WEBHOOK_DELIVERIES.labels(outcome="gave_up").inc()
        return
    task = WebhookAttempt(job_id=job.job_id, status=status, attempt=attempt)
    adapters.tasks.enqueue_http(
        "webhooks",
        url=f"{control.rstrip('/')}{DELIVERY_ROUTE}",
        body=task.model_dump(),
        # One task per attempt: a retried enqueue cannot schedule the same attempt twice.
        task_id=f"{delivery_id(job.job_id, status)}-{attempt}",
        schedule_time=utcnow() + timedelta(seconds=delay_s),
    )
    log.info(
        "webhook retry scheduled",
        extra={"fields": {"job_id": job.job_id, "attempt": attempt, "delay_s": delay_s}},
    )


def deliver_scheduled(adapters: Adapters, task: WebhookAttempt) -> DeliveryResult:
    """One scheduled attempt (the Cloud Task on the webhooks queue); schedules the next one on
    a retryable failure, so the queue itself never needs to retry a delivery."""
    job = adapters.jobs.get_job(task.job_id)
    if job is None or job.status.value != task.status:
        return DeliveryResult("skipped", 0)
    from shared.services.completion import build_summary

    return deliver(
        adapters, job, build_summary(adapters, job), first_attempt=task.attempt, max_inline=1
    )
