"""Internal HTTP function: the scheduled sweep plus the internal control routes.

  POST /                                   sweep (Cloud Scheduler) → JSON summary
  POST /internal/webhook-delivery          one scheduled webhook attempt (Cloud Tasks)
  POST /internal/jobs/{job_id}:expire      deadline reached (long-job workflow)
  POST /internal/jobs/{job_id}:worker-lost worker unreachable (long-job workflow)

Deployed private (invoker: the scheduler, tasks and workflows service accounts only).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import flask
import functions_framework
from pydantic import ValidationError

from shared.errors import CodexCloudError
from shared.services import control
from shared.services.runtime import invocation, process_adapters
from shared.services.sweeper import sweep
from shared.services.webhooks import DELIVERY_ROUTE, WebhookAttempt, deliver_scheduled

log = logging.getLogger("functions.sweeper")
JOB_ROUTE = re.compile(
    r"^/internal/jobs/(?P<job_id>[A-Za-z0-9._-]{1,128}):(?P<op>expire|worker-lost)$"
)

Reply = tuple[dict[str, Any], int]


def _route(request: flask.Request) -> Reply:
    adapters = process_adapters()
    path = request.path.rstrip("/") or "/"
    body = request.get_json(silent=True) or {}
    if path == "/":
        return {"swept": sweep(adapters).as_dict()}, 200
    if path == DELIVERY_ROUTE:
        result = deliver_scheduled(adapters, WebhookAttempt.model_validate(body))
        # Always 2xx once handled: the next attempt is scheduled by us with backoff.
        return {"outcome": result.outcome, "next_attempt": result.next_attempt}, 200
    match = JOB_ROUTE.match(path)
    if match is None:
        return {"error": "not found"}, 404
    job_id = match["job_id"]
    if match["op"] == "expire":
        outcome = control.expire(adapters, job_id)
    else:
        outcome = control.worker_lost(adapters, job_id, control.WorkerLost.model_validate(body))
    return {"job_id": outcome.job_id, "status": outcome.status, "changed": outcome.changed}, 200


@functions_framework.http
def sweeper(request: flask.Request) -> Reply:
    with invocation({}, dict(request.headers), route=request.path):
        try:
            return _route(request)
        except ValidationError as exc:
            return {"error": "invalid body", "detail": exc.errors(include_url=False)}, 400
        except CodexCloudError as exc:
            if exc.retryable:
                log.warning(
                    "control call failed transiently", extra={"fields": {"error": exc.detail}}
                )
            return {"error": exc.code, "detail": exc.detail}, exc.http_status
