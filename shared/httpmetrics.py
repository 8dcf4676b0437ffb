"""ASGI middleware recording `http_requests_total` and `http_request_duration_seconds` with
the route TEMPLATE as the label (never the raw path: ids would explode the series count)."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS


def route_template(app: Any, scope: Scope) -> str:
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, *, service: str, router: Any = None) -> None:
        self.app = app
        self.service = service
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(self.router or scope.get("app"), scope)
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            HTTP_REQUESTS.labels(service=self.service, route=route, status=str(status)).inc()
            HTTP_REQUEST_DURATION.labels(service=self.service, route=route).observe(
                time.perf_counter() - started
            )
