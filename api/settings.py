"""The API service's settings: the shared settings plus the knobs only this service reads.

`ApiSettings` extends `shared.settings.Settings`, so the API process still loads exactly one
validated settings object (same `CODEX_CLOUD_` prefix, same production safety checks).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from shared.settings import Settings


class ApiSettings(Settings):
    # Requests per minute per API key, by the key's tier (a key may carry its own override).
    rate_limit_standard_per_minute: int = Field(default=1_000, ge=1)
    # Requests per minute per PREMIUM key.
    rate_limit_premium_per_minute: int = Field(default=10_000, ge=1)
    # Jobs of one tenant that may be queued/dispatched/running at once (new submissions get 429).
    max_active_jobs_per_tenant: int = Field(default=100, ge=1)
    # How old this process's count of a tenant's active jobs may be while the tenant is well
    # under the cap (0 counts on every submission). Near the cap it always counts afresh.
    active_jobs_recount_s: float = Field(default=1.0, ge=0)
    # Job creates one process sends at once; submissions that arrive while that many are
    # under way share the next commit (group commit, decision 0205). 1 batches the most.
    submit_commit_concurrency: int = Field(default=4, ge=1, le=256)
    # Request bodies above this size are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    # A sync request waits for the job's timeout plus this margin, capped by sync_max_wait_s,
    # then answers 202 with the async shape.
    sync_wait_margin_s: float = Field(default=5.0, ge=0)
    # Longest a sync request waits before answering 202 with the async shape. Below the API
    # Gateway's 900 s backend deadline, so the caller gets that 202 rather than a 504.
    sync_max_wait_s: float = Field(default=840.0, gt=0)
    # Interval of heartbeats on SSE and WebSocket streams (keeps proxies from closing them).
    stream_heartbeat_s: float = Field(default=15.0, gt=0)
    # Lifetime of the connection token handed out for mode=stream.
    stream_token_ttl_s: int = Field(default=300, ge=10, le=3_600)
    # Public base URL for WebSocket clients (ws:// or wss://); derived from api_base_url if unset.
    websocket_base_url: str | None = None
    # Accept the identity API Gateway forwards in X-Apigateway-Api-Userinfo, on requests that
    # carry the gateway's own ID token (audience gateway_oidc_audience, from one of
    # gateway_allowed_callers). Outside local/test both are required (decision 0206).
    trust_gateway_userinfo: bool = False
    # Audience of the ID token API Gateway sends with each request (its jwt_audience).
    gateway_oidc_audience: str | None = None
    # Comma-separated service accounts API Gateway calls the API as.
    gateway_allowed_callers: str = ""
    # How long a verified API key stays cached in the process (revocation delay upper bound).
    api_key_cache_s: float = Field(default=5.0, ge=0)
    # Lifetime of signed artifact download URLs.
    artifact_url_ttl_s: int = Field(default=900, ge=60, le=604_800)
    # Server processes of `python -m api` (one per core uses a multi-core instance). Each
    # process is an instance of its own (its WebSockets, key cache, fallback buckets; see
    # docs/api.md).
    api_workers: int = Field(default=1, ge=1, le=64)

    @property
    def gateway_callers(self) -> frozenset[str]:
        return frozenset(
            e.strip().lower() for e in self.gateway_allowed_callers.split(",") if e.strip()
        )

    @model_validator(mode="after")
    def _gateway_identity_checked(self) -> ApiSettings:
        """Refuse to start when the gateway's userinfo header would be trusted unchecked:
        anyone who reaches the service URL (SSE and WebSocket clients must) could then claim
        any identity."""
        if not self.trust_gateway_userinfo:
            return self
        if self.gateway_oidc_audience and not self.gateway_callers:
            raise ValueError(
                "CODEX_CLOUD_GATEWAY_ALLOWED_CALLERS must name the gateway's service account "
                "when CODEX_CLOUD_GATEWAY_OIDC_AUDIENCE is set"
            )
        if not self.gateway_oidc_audience and self.environment not in ("local", "test"):
            raise ValueError(
                "CODEX_CLOUD_TRUST_GATEWAY_USERINFO needs CODEX_CLOUD_GATEWAY_OIDC_AUDIENCE and "
                f"CODEX_CLOUD_GATEWAY_ALLOWED_CALLERS in {self.environment} (else anyone "
                "reaching the service could forge the header)"
            )
        return self

    def tier_limit(self, tier: str) -> int:
        if tier.upper() == "PREMIUM":
            return self.rate_limit_premium_per_minute
        return self.rate_limit_standard_per_minute

    @property
    def ws_base_url(self) -> str:
        if self.websocket_base_url:
            return self.websocket_base_url.rstrip("/")
        base = self.api_base_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base.removeprefix("https://")
        return "ws://" + base.removeprefix("http://")


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()
