"""The worker's HTTP surface (Cloud Tasks and Workflows call it; Kubernetes probes it).

Every route but the probes needs a Google-signed OIDC token from an allowed caller when
CODEX_CLOUD_WORKER_OIDC_AUDIENCE is set (worker/auth.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.adapters import Adapters
from shared.errors import CodexCloudError, NotFound, RetryableError
from shared.httpmetrics import HttpMetricsMiddleware
from shared.log import log_context, parse_trace_header
from shared.settings import get_settings
from worker.auth import WorkerAuth, WorkerAuthMiddleware
from worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


def _problem(exc: CodexCloudError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RetryableError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return JSONResponse(
        {
            "type": f"urn:codex-cloud:{exc.code}",
            "title": exc.title,
            "status": exc.http_status,
            "detail": exc.detail,
        },
        status_code=exc.http_status,
        headers=headers,
        media_type="application/problem+json",
    )


def create_app(
    adapters: Adapters | None = None,
    *,
    advertise_url: str | None = None,
    auth: WorkerAuth | None = None,
) -> Starlette:
    """The worker app. `auth` defaults to what the settings ask for (raises outside local/test
    when they name no audience, so the worker cannot start open)."""
    state: dict[str, WorkerRuntime] = {}
    auth = auth or WorkerAuth.from_settings(adapters.settings if adapters else get_settings())

    def runtime() -> WorkerRuntime:
        return state["runtime"]

    async def run(request: Request, *, wait: bool) -> Response:
        job_id = request.path_params["job_id"]
        trace, span = parse_trace_header(request.headers)
        with log_context(trace_id=trace, span_id=span, job_id=job_id):
            try:
                accepted = await runtime().accept(job_id, wait=wait)
            except CodexCloudError as exc:
                return _problem(exc)
        body: dict[str, Any] = {"status": accepted.status, "job_id": job_id}
        if accepted.job is not None:
            body["job"] = accepted.job.model_dump(mode="json", exclude={"webhook_secret"})
        if accepted.status == "ignored":
            # Already claimed or finished elsewhere: acknowledge so the queue stops retrying.
            return JSONResponse(body, status_code=200)
        return JSONResponse(body, status_code=200 if wait else 202)

    async def run_async(request: Request) -> Response:
        return await run(request, wait=False)

    async def run_sync(request: Request) -> Response:
        return await run(request, wait=True)

    async def cancel(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        stopped = runtime().cancel(job_id)
        if not stopped:
            # Not running here: record the request so whichever worker runs it stops.
            try:
                await asyncio.to_thread(runtime().adapters.jobs.request_cancel, job_id)
            except CodexCloudError as exc:
                return _problem(exc)
        return JSONResponse({"job_id": job_id, "stopping_here": stopped}, status_code=202)

    async def get_job(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            job = await asyncio.to_thread(runtime().adapters.jobs.get_job, job_id)
        except CodexCloudError as exc:
            return _problem(exc)
        if job is None:
            return _problem(NotFound(f"job {job_id} not found"))
        return JSONResponse(job.model_dump(mode="json", exclude={"webhook_secret"}))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "worker_id": runtime().worker_id})

    async def readyz(request: Request) -> Response:
        rt = runtime()
        body = {"worker_id": rt.worker_id, "free_slots": rt.free_slots(), "draining": rt.draining}
        if rt.draining:
            return JSONResponse({**body, "status": "draining"}, status_code=503)
        try:
            await asyncio.wait_for(
                asyncio.to_thread(rt.adapters.jobs.get_job, "readiness-probe"), timeout=2
            )
        except (CodexCloudError, TimeoutError):
            return JSONResponse({**body, "status": "firestore unreachable"}, status_code=503)
        return JSONResponse({**body, "status": "ready"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        built = adapters or Adapters()
        url = advertise_url or built.settings.worker_advertise_url or built.settings.worker_url
        rt = WorkerRuntime(built, url)
        state["runtime"] = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.drain()

    routes = [
        Route("/v1/jobs/{job_id}:run", run_async, methods=["POST"]),
        Route("/v1/jobs/{job_id}:run-sync", run_sync, methods=["POST"]),
        Route("/v1/jobs/{job_id}:cancel", cancel, methods=["POST"]),
        Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    if auth is not None:
        app.add_middleware(WorkerAuthMiddleware, auth=auth)
    # Outermost, so refused calls are counted too.
    app.add_middleware(HttpMetricsMiddleware, service="worker", router=app.router)
    return app
