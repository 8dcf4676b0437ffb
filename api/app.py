"""The API service: `create_app()` builds the FastAPI app; clients are built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import problems
from api.console import mount_console
from api.deps import Services
from api.middleware import BodyGuard, RequestContext
from api.openapi_doc import customise_openapi
from api.routes import health, jobs, stream
from api.settings import ApiSettings, get_api_settings
from shared.adapters import Adapters
from shared.log import configure_logging

API_VERSION = "2.0.0"


def create_app(settings: ApiSettings | None = None, adapters: Adapters | None = None) -> FastAPI:
    settings = settings or get_api_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.project_id)
        app.state.services = Services.build(settings, adapters)
        app.state.services.start()
        yield
        await app.state.services.aclose()

    app = FastAPI(
        title="codex-cloud API",
        version=API_VERSION,
        description=(
            "Run the codex coding agent as a service: submit prompts, follow their events, "
            "fetch results and artifacts. Errors are RFC 9457 problem details."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(stream.router)
    app.include_router(health.router)
    mount_console(app)
    # Outermost first: context (trace, metrics, log) wraps the body guard's early answers too.
    app.add_middleware(BodyGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, service=settings.service_name)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = customise_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
