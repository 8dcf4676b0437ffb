"""Per-process services (built once in the app's lifespan) and the request dependencies."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from api.activejobs import ActiveJobGauge, count_active_jobs
from api.auth import (
    Authenticator,
    GatewayProof,
    KeyCache,
    Principal,
    lookup_id_with,
    lookup_with,
)
from api.fanout import AdminFanout
from api.settings import ApiSettings
from api.streaming import ConnectionRegistry
from api.watch import Listeners
from shared.adapters import Adapters
from shared.adapters.redis import make_async_redis
from shared.apikeys import Scope
from shared.jobstore import JobStore
from shared.jobstore_async import AsyncJobWriter
from shared.log import current_trace_id
from shared.oidc import IdTokenVerifier
from shared.ratelimit import RateLimiter

RATE_LIMIT_STATE = "ratelimit_headers"


@dataclass
class Services:
    settings: ApiSettings
    adapters: Adapters
    jobs: JobStore
    writer: AsyncJobWriter
    limiter: RateLimiter
    auth: Authenticator
    listeners: Listeners
    connections: ConnectionRegistry
    fanout: AdminFanout
    active_jobs: ActiveJobGauge

    @classmethod
    def build(cls, settings: ApiSettings, adapters: Adapters | None = None) -> Services:
        adapters = adapters or Adapters(settings)
        limiter = RateLimiter(adapters.redis_async)
        auth = Authenticator(
            lookup=lookup_with(adapters.firestore, settings),
            lookup_id=lookup_id_with(adapters.firestore, settings),
            tier_limit=settings.tier_limit,
            limiter=limiter,
            cache=KeyCache(settings.api_key_cache_s),
            trust_gateway=settings.trust_gateway_userinfo,
            gateway_proof=_gateway_proof(settings),
        )
        connections = ConnectionRegistry()
        return cls(
            settings=settings,
            adapters=adapters,
            jobs=adapters.jobs,
            writer=AsyncJobWriter(
                adapters.firestore_async,
                adapters.jobs,
                commit_concurrency=settings.submit_commit_concurrency,
            ),
            limiter=limiter,
            auth=auth,
            listeners=Listeners(adapters.firestore, settings),
            connections=connections,
            # Its own client: the socket timeout must outlast the fan-out's 1 s wait for replies.
            fanout=AdminFanout(make_async_redis(settings, socket_timeout=2.0), connections),
            active_jobs=ActiveJobGauge(
                lambda tenant: count_active_jobs(
                    adapters.firestore, settings, tenant, up_to=settings.max_active_jobs_per_tenant
                ),
                max_age_s=settings.active_jobs_recount_s,
            ),
        )

    def start(self) -> None:
        """Start what runs in the background (on the serving event loop)."""
        self.fanout.start()

    async def aclose(self) -> None:
        """Stop the background work and close the asyncio clients, which belong to the loop
        that is shutting down."""
        await self.fanout.stop()
        await self.fanout.close()
        await self.adapters.redis_async.aclose()
        # firestore.AsyncClient has no close(); its transport does (the gRPC channel).
        with contextlib.suppress(Exception):
            await self.adapters.firestore_async._firestore_api.transport.close()


def _gateway_proof(settings: ApiSettings) -> GatewayProof | None:
    """The check of API Gateway's ID token when its userinfo header is trusted; None when it
    is trusted unchecked, which the settings allow in local and test only."""
    if not settings.trust_gateway_userinfo or not settings.gateway_oidc_audience:
        return None
    return GatewayProof(IdTokenVerifier(settings.gateway_oidc_audience, settings.gateway_callers))


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


# Async although it does no I/O: FastAPI runs a plain `def` dependency on a worker thread.
async def get_services(conn: HTTPConnection) -> Services:
    return services_of(conn)


ServicesDep = Annotated[Services, Depends(get_services)]


def _principal_with(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    # Async so that a request with a cached key and Redis reachable never waits for a worker
    # thread: two thread hops per submission were a fifth of the API's CPU per request.
    async def dependency(request: Request, services: ServicesDep) -> Principal:
        auth = services.auth
        principal = auth.identify_cached(request.headers)
        if principal is None:
            principal = await run_in_threadpool(auth.identify, request.headers)
        auth.authorize(principal, scope)
        decision = await auth.throttle(principal)
        request.state.ratelimit_headers = decision.headers()
        return principal

    dependency.__name__ = f"require_{scope.value}"
    return dependency


Reader = Annotated[Principal, Depends(_principal_with(Scope.READ))]
Writer = Annotated[Principal, Depends(_principal_with(Scope.WRITE))]
Admin = Annotated[Principal, Depends(_principal_with(Scope.ADMIN))]


def trace_id() -> str | None:
    return current_trace_id()
