"""The one settings object. Every process loads it once through `get_settings()`.

All variables use the `CODEX_CLOUD_` prefix except the standard Google ones
(`GOOGLE_CLOUD_PROJECT`, `*_EMULATOR_HOST`), which the client libraries read themselves.
The README's configuration table lists every field.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topology import Topology, load_topology

Environment = Literal["local", "test", "dev", "prod"]
SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]

# Well-known local default: refused outside local/test so nobody ships it by accident.
LOCAL_SIGNING_KEY = "local-only-signing-key-do-not-deploy"
LOCAL_WORKER_URL = "http://127.0.0.1:8080"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CODEX_CLOUD_", extra="ignore", frozen=True, populate_by_name=True
    )

    # Deployment kind: local and test allow emulators and local defaults; dev/prod refuse them.
    environment: Environment = "local"
    # GCP project of every resource (GOOGLE_CLOUD_PROJECT is accepted too).
    project_id: str = Field(
        default="codex-cloud-local",
        validation_alias=AliasChoices("CODEX_CLOUD_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
    )
    # Region of Cloud Run, Workflows and the default Cloud Tasks location.
    region: str = "us-central1"
    # Prefix added to every topic, subscription, bucket and queue name from topology.yaml.
    name_prefix: str = ""
    # Minimum severity of the JSON log lines.
    log_level: str = "INFO"
    # `service` label on HTTP metrics and logs (set per function/service by the deployment).
    service_name: str = "codex-cloud"

    # Firestore database holding jobs, events, keys and the worker registry.
    firestore_database: str = "(default)"
    # Redis (Memorystore) URL for rate limits; rediss:// with AUTH in production.
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Firestore emulator host:port (read by the client library; refused outside local/test).
    firestore_emulator_host: str | None = Field(
        default=None, validation_alias="FIRESTORE_EMULATOR_HOST"
    )
    # Pub/Sub emulator host:port (read by the client library; refused outside local/test).
    pubsub_emulator_host: str | None = Field(default=None, validation_alias="PUBSUB_EMULATOR_HOST")
    # fake-gcs-server URL (read by the client library; refused outside local/test).
    storage_emulator_host: str | None = Field(
        default=None, validation_alias="STORAGE_EMULATOR_HOST"
    )
    # Cloud Tasks emulator host:port (reached over an insecure gRPC channel).
    tasks_emulator_host: str | None = None
    # workflows-emulator base URL; executions start there instead of the Workflows API.
    workflows_emulator_url: str | None = None

    # The worker pool's load-balanced URL: tasks of jobs that name no session go there
    # (spread over every worker), and every task when no healthy worker is registered.
    worker_url: str = LOCAL_WORKER_URL
    # Public base URL of the API (status_url/events_url in responses).
    api_base_url: str = "http://127.0.0.1:8000"
    # Location of the Cloud Tasks queues.
    tasks_location: str = "us-central1"
    # Name of the Cloud Workflows workflow that runs long jobs.
    workflow_name: str = "codex-long-job"
    # Service account whose OIDC token Cloud Tasks attaches to worker calls (production).
    tasks_service_account: str | None = None

    # HMAC key for connection tokens; must be a real secret (>= 32 chars) outside local/test.
    token_signing_key: SecretStr = SecretStr(LOCAL_SIGNING_KEY)
    # OpenAI API key for codex (from Secret Manager); unset locally: the scripted model is used.
    openai_api_key: SecretStr | None = None

    # Model name codex asks for.
    model: str = "gpt-5-codex"
    # Responses API base URL (the scripted model server locally, the OpenAI API in production).
    model_base_url: str = "https://api.openai.com/v1"

    # Jobs with a longer timeout run under Cloud Workflows instead of a Cloud Task.
    long_job_threshold_ms: int = Field(default=600_000, ge=1_000)
    # Attempts a job gets when the request does not say (worker loss counts as an attempt).
    default_max_attempts: int = Field(default=3, ge=1, le=10)
    # Lease a worker holds on a running job; renewed by heartbeats.
    lease_seconds: int = Field(default=30, ge=5, le=600)
    # Interval of lease renewals and worker-registry updates.
    heartbeat_seconds: int = Field(default=10, ge=1, le=300)
    # A job queued this long and never dispatched, or dispatched this long ago and never
    # started, is (re)dispatched by the sweeper.
    dispatch_stale_seconds: int = Field(default=120, ge=5)
    # Job events expire (Firestore TTL on expire_at) after this many days.
    event_ttl_days: int = Field(default=30, ge=1)

    # Jobs one worker runs at once (one codex process each).
    worker_slots: int = Field(default=4, ge=1, le=64)
    # This worker's id (the pod name in GKE).
    worker_id: str = "worker-local"
    # Where per-job workspaces and CODEX_HOMEs are created (removed after each job).
    workspace_root: str = "/tmp/codex-cloud-workspaces"
    # codex sandbox: workspace-write needs user namespaces; danger-full-access relies on the pod.
    sandbox_mode: SandboxMode = "workspace-write"
    # codex's bundled skills (skill-installer, imagegen, ...): off, a job neither needs them
    # nor pays for installing them and sending their descriptions to the model on every run.
    codex_bundled_skills: bool = False
    # Give each new job's CODEX_HOME a copy of codex's state databases, made once per worker
    # (worker/codex/statedb.py): saves codex ~50 ms of migrations on every run.
    codex_seed_state: bool = True
    # Path of the codex binary; default: the pinned one under node_modules.
    codex_bin: str | None = None
    # URL other components use to reach this worker (StatefulSet pod DNS in GKE).
    worker_advertise_url: str | None = None
    # Audience of the Google-signed OIDC ID tokens the worker accepts (its Ingress URL). When set,
    # every worker route except /healthz, /readyz and /metrics needs such a token, and callers
    # (Cloud Tasks, the workflow, the sweeper) mint theirs for it; the worker refuses to start
    # without it outside local/test (decision 0021).
    worker_oidc_audience: str | None = None
    # Service-account emails whose tokens the worker accepts (comma-separated; the worker needs
    # it with CODEX_CLOUD_WORKER_OIDC_AUDIENCE). A valid token from anyone else gets 403.
    worker_allowed_callers: str = ""
    # SIGTERM: time running jobs get to finish before they are stopped and requeued.
    drain_grace_seconds: float = Field(default=240.0, ge=0)
    # Codex events are batched: a batch gathers this long after its first event (or until it
    # holds `CODEX_CLOUD_EVENT_BATCH_MAX`), but see `CODEX_CLOUD_EVENT_WRITE_INTERVAL_MS`.
    event_flush_ms: int = Field(default=25, ge=1, le=1000)
    # A batch of codex events is written no sooner than this after the job's previous event
    # write began: every write rewrites the job's event head (one document; Firestore
    # sustains a few writes per second on one document), so a burst costs one write per
    # interval.
    event_write_interval_ms: int = Field(default=250, ge=0, le=10_000)
    # Largest number of events in one Firestore batch write.
    event_batch_max: int = Field(default=200, ge=1, le=499)
    # A worker whose registry heartbeat is older than this is skipped by dispatch.
    worker_stale_seconds: int = Field(default=30, ge=2)
    # codex's own retries of a failed model request (bounded; codex's default retries long).
    model_request_max_retries: int = Field(default=1, ge=0, le=10)
    # codex's retries of a broken model stream.
    model_stream_max_retries: int = Field(default=1, ge=0, le=10)
    # A model stream silent for this long fails the turn.
    model_stream_idle_timeout_ms: int = Field(default=60_000, ge=1_000)

    # Allow webhooks to private/loopback/link-local addresses (local stack only; refused in prod).
    webhook_allow_private: bool = False
    # Timeout of one webhook delivery attempt.
    webhook_timeout_s: float = Field(default=10.0, gt=0)

    # Tenants accepted on codex-jobs besides those with an API key (comma-separated).
    pubsub_tenants: str = "default"
    # Tenant of a Pub/Sub job whose message has no `tenant` attribute.
    pubsub_default_tenant: str = "default"
    # Larger Pub/Sub messages are dead-lettered as too_large.
    pubsub_max_message_bytes: int = Field(default=524_288, ge=1_024)
    # Tenant of uploads outside `tenants/{tenant}/`.
    upload_default_tenant: str = "default"
    # Largest archive accepted from the uploads bucket.
    upload_max_bytes: int = Field(default=104_857_600, ge=1_024)
    # Largest job spec or manifest accepted from the uploads bucket.
    upload_manifest_max_bytes: int = Field(default=1_048_576, ge=1_024)
    # Events older than this are dropped by the event-driven functions (the sweeper recovers).
    event_max_age_s: int = Field(default=86_400, ge=60)

    # Collection of the worker registry (`workers/{id}` docs written by the worker service).
    workers_collection: str = "workers"
    # URL of the internal control function (functions/sweeper.py): webhook retries, workflow
    # callbacks. None → webhook retries cannot be scheduled and workflows skip the callback.
    control_url: str | None = None
    # First delay between a long job's status polls in the workflow.
    workflow_poll_initial_s: float = Field(default=2.0, gt=0)
    # Largest delay between a long job's status polls (the backoff stops growing there).
    workflow_poll_max_s: float = Field(default=30.0, gt=0)
    # Consecutive failed polls after which the workflow treats the worker as lost.
    workflow_loss_threshold: int = Field(default=5, ge=1)
    # Attach OIDC tokens to the workflow's worker calls (production; the emulator lacks it).
    workflow_use_oidc: bool = False

    # Terminal side effects: a claim older than this is considered abandoned (crashed holder).
    effect_claim_ttl_s: int = Field(default=60, ge=1)
    # Webhook delivery attempts in total before giving up.
    webhook_max_attempts: int = Field(default=8, ge=1, le=20)
    # First webhook retry delay; doubles per attempt.
    webhook_backoff_base_s: float = Field(default=2.0, gt=0)
    # Largest webhook retry delay.
    webhook_backoff_max_s: float = Field(default=600.0, gt=0)
    # In-process retries inside on_job_written are bounded by this; the rest go to Cloud Tasks.
    webhook_inline_budget_s: float = Field(default=5.0, ge=0)
    # Webhook attempts made inside on_job_written before handing off to Cloud Tasks.
    webhook_inline_attempts: int = Field(default=2, ge=1, le=5)

    @model_validator(mode="after")
    def _worker_audience_not_blank(self) -> Settings:
        if self.worker_oidc_audience is not None and not self.worker_oidc_audience.strip():
            raise ValueError("CODEX_CLOUD_WORKER_OIDC_AUDIENCE must not be blank")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production_defaults(self) -> Settings:
        if self.environment in ("local", "test"):
            return self
        problems: list[str] = []
        if self.token_signing_key.get_secret_value() == LOCAL_SIGNING_KEY:
            problems.append("CODEX_CLOUD_TOKEN_SIGNING_KEY must be set to a real secret")
        if len(self.token_signing_key.get_secret_value()) < 32:
            problems.append("CODEX_CLOUD_TOKEN_SIGNING_KEY must be at least 32 characters")
        if self.webhook_allow_private:
            problems.append("CODEX_CLOUD_WEBHOOK_ALLOW_PRIVATE must be false")
        for name in (
            "firestore_emulator_host",
            "pubsub_emulator_host",
            "storage_emulator_host",
            "tasks_emulator_host",
            "workflows_emulator_url",
        ):
            if getattr(self, name):
                problems.append(f"{name.upper()} must not be set outside local/test")
        if self.project_id == "codex-cloud-local":
            problems.append("CODEX_CLOUD_PROJECT_ID (or GOOGLE_CLOUD_PROJECT) must be set")
        if problems:
            raise ValueError(f"unsafe settings for {self.environment}: " + "; ".join(problems))
        return self

    @property
    def worker_pool_url(self) -> str:
        """The worker pool's load-balanced URL, or "" when none is configured (the loopback
        default counts as configured only locally)."""
        url = self.worker_url.rstrip("/")
        if url == LOCAL_WORKER_URL and self.environment not in ("local", "test"):
            return ""
        return url

    @property
    def worker_callers(self) -> frozenset[str]:
        """`worker_allowed_callers` as a set of lower-cased emails."""
        return frozenset(
            e.strip().lower() for e in self.worker_allowed_callers.split(",") if e.strip()
        )

    def worker_auth_problem(self) -> str | None:
        """Why the worker must not start with these settings, or None. Outside local/test it
        needs an audience (else its routes are open to anyone reaching the Ingress); with one,
        at least one allowed caller. Only the worker checks this: the functions set just the
        audience, to mint tokens for it."""
        if self.worker_oidc_audience and not self.worker_callers:
            return (
                "CODEX_CLOUD_WORKER_ALLOWED_CALLERS must name at least one service account "
                "when CODEX_CLOUD_WORKER_OIDC_AUDIENCE is set"
            )
        if self.environment in ("local", "test") or self.worker_oidc_audience:
            return None
        return (
            f"CODEX_CLOUD_WORKER_OIDC_AUDIENCE must be set for the worker in {self.environment} "
            "(its routes would accept unauthenticated calls)"
        )

    @property
    def topology(self) -> Topology:
        return load_topology(self.name_prefix)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load and validate settings once per process (fails fast on bad configuration)."""
    return Settings()
