"""Creating jobs from the machine channels (Pub/Sub, uploads): one code path for both."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from shared.errors import InvalidInput
from shared.jobstore import CreateOutcome
from shared.metrics import JOBS_SUBMITTED
from shared.models import Channel, JobRequest

if TYPE_CHECKING:
    from shared.adapters import Adapters


def parse_request(body: Mapping[str, Any]) -> JobRequest:
    """Validate a job request body, turning pydantic errors into InvalidInput with field paths."""
    try:
        return JobRequest.model_validate(dict(body))
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
        raise InvalidInput(f"invalid job request: {summary}", errors=errors) from None


def create_channel_job(
    adapters: Adapters,
    request: JobRequest,
    *,
    tenant: str,
    channel: Channel,
    idempotency_key: str,
    source: Mapping[str, Any],
) -> CreateOutcome:
    """Create (or find, on replay) the job. A webhook without a secret gets a generated one,
    stored on the job: machine channels have no response to return it in, so the secret is
    readable through the API's job view for the owning tenant."""
    from shared.services.uploads import check_workspace_access

    check_workspace_access(request, tenant, adapters.settings)
    webhook_secret = None
    if request.webhook is not None and request.webhook.secret is None:
        webhook_secret = secrets.token_urlsafe(32)
    route = "workflows" if request.is_long(adapters.settings.long_job_threshold_ms) else "tasks"
    outcome = adapters.jobs.create_job(
        request,
        tenant=tenant,
        channel=channel,
        idempotency_key=idempotency_key,
        source=source,
        webhook_secret=webhook_secret,
        route=route,
    )
    if outcome.created:
        JOBS_SUBMITTED.labels(channel=channel.value, priority=request.priority.value).inc()
    return outcome
