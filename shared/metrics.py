"""Prometheus metrics exported by codex-cloud processes.

Names here are the contract with monitoring/ (dashboards and alert rules); a test checks that
every metric those files query is defined in this module.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# The seed dashboards query these two names with these labels.
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests served, by service, route template and status code.",
    ["service", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency, by service and route template.",
    ["service", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

JOBS_SUBMITTED = Counter(
    "codex_jobs_submitted_total",
    "Jobs accepted, by channel (http, pubsub, upload) and priority.",
    ["channel", "priority"],
)
JOBS_FINISHED = Counter(
    "codex_jobs_finished_total",
    "Jobs that reached a terminal state, by status and channel.",
    ["status", "channel"],
)
JOBS_DISPATCHED = Counter(
    "codex_jobs_dispatched_total",
    "Dispatches to the worker pool, by route (tasks, workflows) and queue.",
    ["route", "queue"],
)
DEAD_LETTERED = Counter(
    "codex_dead_letter_total",
    "Inputs rejected permanently and recorded with a reason, by source.",
    ["source", "reason"],
)
WORKER_SLOTS = Gauge(
    "codex_worker_slots",
    "Worker job slots by state (busy, free).",
    ["state"],
)
WORKER_JOBS = Counter(
    "codex_worker_jobs_total",
    "Jobs run by this worker, by outcome.",
    ["outcome"],
)
CODEX_DURATION = Histogram(
    "codex_run_duration_seconds",
    "Wall time of one codex exec run on a worker.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
SWEEPER_ACTIONS = Counter(
    "codex_sweeper_actions_total",
    "Jobs the sweeper acted on, by action (requeued, redispatched, failed, timed_out, cancelled).",
    ["action"],
)
STUCK_JOBS = Gauge(
    "codex_stuck_jobs",
    "Non-terminal jobs past their lease or deadline at the last sweep.",
)
WEBHOOK_DELIVERIES = Counter(
    "codex_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, retry, gave_up).",
    ["outcome"],
)
