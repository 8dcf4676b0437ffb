"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import Response

from api.deps import Services, ServicesDep
from api.problems import problem_response
from api.schemas import Health, Ready

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


@router.get("/health", summary="Liveness", response_model=Health)
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _check_firestore(services: Services) -> None:
    names = services.settings.topology.firestore
    ref = services.adapters.firestore.collection(names.jobs_collection).document("_ready")
    ref.get(retry=None, timeout=CHECK_TIMEOUT_S)


def _check_redis(services: Services) -> None:
    services.adapters.redis.ping()


def _run_checks(services: Services) -> dict[str, str]:
    checks = {"firestore": _check_firestore, "redis": _check_redis}
    results: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(fn, services) for name, fn in checks.items()}
        for name, future in futures.items():
            try:
                future.result(timeout=CHECK_TIMEOUT_S + 0.5)
                results[name] = "ok"
            except Exception:  # any failure means "not reachable"; details go to the log
                results[name] = "unavailable"
    return results


@router.get(
    "/ready",
    summary="Readiness: Firestore and Redis reachable",
    response_model=Ready,
    responses={503: {"description": "a dependency is unreachable"}},
)
async def ready(services: ServicesDep) -> Any:
    checks = await run_in_threadpool(_run_checks, services)
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    return problem_response(
        503,
        code="not-ready",
        detail="A dependency is unreachable.",
        instance="/ready",
        extra={"checks": checks},
        headers={"Retry-After": "5"},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
