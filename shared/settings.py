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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CODEX_CLOUD_", extra="ignore", frozen=True, populate_by_name=True
    )

    environment: Environment = "local"
    project_id: str = Field(
        default="codex-cloud-local",
        validation_alias=AliasChoices("CODEX_CLOUD_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
    )
    region: str = "us-central1"
    name_prefix: str = ""
    log_level: str = "INFO"
    service_name: str = "codex-cloud"

    firestore_database: str = "(default)"
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Emulator endpoints. The Google client libraries read the first three from the
    # environment directly; they are mirrored here so production can refuse them.
    firestore_emulator_host: str | None = Field(
        default=None, validation_alias="FIRESTORE_EMULATOR_HOST"
    )
    pubsub_emulator_host: str | None = Field(default=None, validation_alias="PUBSUB_EMULATOR_HOST")
    storage_emulator_host: str | None = Field(
        default=None, validation_alias="STORAGE_EMULATOR_HOST"
    )
    tasks_emulator_host: str | None = None
    workflows_emulator_url: str | None = None

    # Where things live.
    worker_url: str = "http://127.0.0.1:8080"
    api_base_url: str = "http://127.0.0.1:8000"
    tasks_location: str = "us-central1"
    workflow_name: str = "codex-long-job"
    tasks_service_account: str | None = None

    # Secrets.
    token_signing_key: SecretStr = SecretStr(LOCAL_SIGNING_KEY)
    openai_api_key: SecretStr | None = None

    # The model codex talks to (the scripted server locally, the OpenAI API in production).
    model: str = "gpt-5-codex"
    model_base_url: str = "https://api.openai.com/v1"

    # Job policy.
    long_job_threshold_ms: int = Field(default=600_000, ge=1_000)
    default_max_attempts: int = Field(default=3, ge=1, le=10)
    lease_seconds: int = Field(default=30, ge=5, le=600)
    heartbeat_seconds: int = Field(default=10, ge=1, le=300)
    dispatch_stale_seconds: int = Field(default=120, ge=5)
    event_ttl_days: int = Field(default=30, ge=1)

    # Worker.
    worker_slots: int = Field(default=4, ge=1, le=64)
    worker_id: str = "worker-local"
    workspace_root: str = "/tmp/codex-cloud-workspaces"
    sandbox_mode: SandboxMode = "workspace-write"
    codex_bin: str | None = None
    # URL other components use to reach this worker (StatefulSet pod DNS in GKE).
    worker_advertise_url: str | None = None
    # SIGTERM: time running jobs get to finish before they are stopped and requeued.
    drain_grace_seconds: float = Field(default=240.0, ge=0)
    # Codex events are batched into one Firestore write per window (or per max batch).
    event_flush_ms: int = Field(default=25, ge=1, le=1000)
    event_batch_max: int = Field(default=200, ge=1, le=499)
    # A worker whose registry heartbeat is older than this is skipped by dispatch.
    worker_stale_seconds: int = Field(default=30, ge=2)
    model_request_max_retries: int = Field(default=1, ge=0, le=10)
    model_stream_max_retries: int = Field(default=1, ge=0, le=10)
    model_stream_idle_timeout_ms: int = Field(default=60_000, ge=1_000)

    # Webhooks.
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0)

    # Channels (Pub/Sub and upload ingress). Tenants accepted on codex-jobs: those with an API key,
    # plus this comma-separated allow-list (the only source until an API-key lookup exists).
    pubsub_tenants: str = "default"
    pubsub_default_tenant: str = "default"
    pubsub_max_message_bytes: int = Field(default=524_288, ge=1_024)
    upload_default_tenant: str = "default"
    upload_max_bytes: int = Field(default=104_857_600, ge=1_024)
    upload_manifest_max_bytes: int = Field(default=1_048_576, ge=1_024)
    # Events older than this are dropped by the event-driven functions (the sweeper recovers).
    event_max_age_s: int = Field(default=86_400, ge=60)

    # Dispatch: the worker registry (`workers/{id}` docs written by the worker service).
    workers_collection: str = "workers"
    # URL of the internal control function (functions/sweeper.py): webhook retries, workflow
    # callbacks. None → webhook retries cannot be scheduled and workflows skip the callback.
    control_url: str | None = None
    # Long jobs under Workflows: poll cadence and OIDC on the workflow's worker calls.
    workflow_poll_initial_s: float = Field(default=2.0, gt=0)
    workflow_poll_max_s: float = Field(default=30.0, gt=0)
    workflow_loss_threshold: int = Field(default=5, ge=1)
    workflow_use_oidc: bool = False

    # Terminal side effects: a claim older than this is considered abandoned (crashed holder).
    effect_claim_ttl_s: int = Field(default=60, ge=1)
    webhook_max_attempts: int = Field(default=8, ge=1, le=20)
    webhook_backoff_base_s: float = Field(default=2.0, gt=0)
    webhook_backoff_max_s: float = Field(default=600.0, gt=0)
    # In-process retries inside on_job_written are bounded by this; the rest go to Cloud Tasks.
    webhook_inline_budget_s: float = Field(default=5.0, ge=0)
    webhook_inline_attempts: int = Field(default=2, ge=1, le=5)

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
    def topology(self) -> Topology:
        return load_topology(self.name_prefix)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load and validate settings once per process (fails fast on bad configuration)."""
    return Settings()
