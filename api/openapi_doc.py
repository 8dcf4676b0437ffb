"""The API's two published descriptions, both generated from the app's routes:

- OpenAPI 3.1 (`openapi.yaml`): FastAPI's document plus auth schemes and problem+json errors;
- Swagger 2.0 for Google API Gateway (`api-gateway.yaml`): one `x-google-backend` per route
  pointing at `${API_URL}` (filled in at deploy time, see docs/deploy.md), API key and OAuth2
  security, and a per-consumer request quota.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.schemas import Problem, StreamAccepted, StreamMessage, SyncResult

PUBLIC_PATHS = frozenset({"/health", "/ready"})
ERROR_STATUSES: dict[str, str] = {
    "400": "Malformed request (for example, a body that is not JSON)",
    "401": "Missing or invalid API key",
    "403": "The key lacks the scope this operation needs",
    "404": "No such resource (also for another tenant's resources)",
    "409": "Conflict (idempotency key reused with another body; job already finished)",
    "413": "Body too large",
    "415": "Body is not application/json",
    "422": "The request does not match the schema (`errors` lists field paths)",
    "429": "Rate limit or active-jobs cap exceeded (see Retry-After)",
    "503": "A backing service is unavailable (see Retry-After)",
}
_RATE_HEADERS = {
    "RateLimit-Limit": "Requests allowed per minute for this key.",
    "RateLimit-Remaining": "Requests left in the current bucket.",
    "RateLimit-Reset": "Seconds until the bucket is full again.",
}
GATEWAY_BACKEND_PLACEHOLDER = "${API_URL}"
# The audience of the ID token the gateway sends the API (CODEX_CLOUD_GATEWAY_OIDC_AUDIENCE;
# terraform's `api_audience` output): explicit, so it does not depend on which of the service's
# URLs the address names.
GATEWAY_AUDIENCE_PLACEHOLDER = "${API_AUDIENCE}"
GATEWAY_QUOTA_METRIC = "api-requests"
# API Gateway (Service Infrastructure) quota limits only accept the STANDARD key: it is the
# default per consumer project. PREMIUM consumers get a consumer override to this value.
GATEWAY_STANDARD_PER_MINUTE = 1_000
GATEWAY_PREMIUM_PER_MINUTE = 10_000
# Long enough for sync waits; SSE and WebSocket clients connect to the service directly.
GATEWAY_DEADLINE_S = 900.0


def _model_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            out.setdefault(name, sub)
        out[model.__name__] = schema
    return out


def _api_routes(routes: Any) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        nested = getattr(route, "original_router", None)  # an included router
        if nested is not None:
            found.extend(_api_routes(nested.routes))
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def app_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of every documented HTTP route, as OpenAPI writes the path."""
    ops: set[tuple[str, str]] = set()
    for route in _api_routes(app.routes):
        if route.include_in_schema:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path_format)
            for method in route.methods or ():
                if method != "HEAD":
                    ops.add((path, method.lower()))
    return ops


def customise_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version="3.1.0",
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_model_schemas([Problem, SyncResult, StreamAccepted, StreamMessage]))
    components["securitySchemes"] = {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
        "BearerAuth": {"type": "http", "scheme": "bearer"},
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    retry_after = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
    rate_headers = {
        k: {"schema": {"type": "string"}, "description": v} for k, v in _RATE_HEADERS.items()
    }
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            public = path in PUBLIC_PATHS
            statuses = ["503"] if public else list(ERROR_STATUSES)
            if not public:
                op["security"] = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
                for status, response in responses.items():
                    if status.startswith("2"):
                        response.setdefault("headers", {}).update(copy.deepcopy(rate_headers))
            for status in statuses:
                entry: dict[str, Any] = {
                    "description": ERROR_STATUSES[status],
                    "content": copy.deepcopy(problem),
                }
                if status in ("429", "503"):
                    entry["headers"] = copy.deepcopy(retry_after)
                if status == "429":
                    entry["headers"].update(copy.deepcopy(rate_headers))
                responses[status] = entry
            op.setdefault("operationId", f"{method}_{path}")
    return doc


# ---- API Gateway (Swagger 2.0) ----------------------------------------------------------------


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", f"{method}_{path}").strip("_")
    return words


def gateway_document(app: FastAPI) -> dict[str, Any]:
    openapi = app.openapi()
    paths: dict[str, Any] = {}
    for path, method in sorted(app_operations(app)):
        op3 = openapi["paths"][path][method]
        params = [
            {"name": name, "in": "path", "required": True, "type": "string"}
            for name in re.findall(r"\{(\w+)\}", path)
        ]
        op: dict[str, Any] = {
            "operationId": _operation_id(method, path),
            "summary": op3.get("summary", ""),
            "x-google-backend": {
                "address": GATEWAY_BACKEND_PLACEHOLDER,
                "jwt_audience": GATEWAY_AUDIENCE_PLACEHOLDER,
                "path_translation": "APPEND_PATH_TO_ADDRESS",
                "deadline": GATEWAY_DEADLINE_S,
            },
            "responses": {"default": {"description": "See openapi.yaml for the full contract."}},
        }
        if params:
            op["parameters"] = params
        if path not in PUBLIC_PATHS:
            op["security"] = [{"api_key": []}, {"oauth2": []}]
            op["x-google-quota"] = {"metricCosts": {GATEWAY_QUOTA_METRIC: 1}}
        paths.setdefault(path, {})[method] = op
    return {
        "swagger": "2.0",
        "info": {
            "title": "codex-cloud",
            "version": app.version,
            "description": (
                "API Gateway config for codex-cloud. Replace ${API_URL} with the Cloud Run URL "
                "of the api service and ${API_AUDIENCE} with terraform's api_audience output "
                "before creating the config (docs/deploy.md). Quota: "
                f"{GATEWAY_STANDARD_PER_MINUTE}/min per consumer project (STANDARD); PREMIUM "
                f"consumers get a {GATEWAY_PREMIUM_PER_MINUTE}/min consumer override. "
                "Server-Sent Events and WebSockets are not proxied by API Gateway: clients "
                "connect to the service URL for those."
            ),
        },
        "schemes": ["https"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "api_key": {"type": "apiKey", "name": "X-API-KEY", "in": "header"},
            "oauth2": {
                "type": "oauth2",
                "flow": "implicit",
                "authorizationUrl": "https://accounts.google.com/o/oauth2/v2/auth",
                "x-google-issuer": "https://accounts.google.com",
                "x-google-jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
                "x-google-audiences": "${OAUTH_AUDIENCE}",
            },
        },
        "x-google-management": {
            "metrics": [
                {
                    "name": GATEWAY_QUOTA_METRIC,
                    "displayName": "codex-cloud API requests",
                    "valueType": "INT64",
                    "metricKind": "DELTA",
                }
            ],
            "quota": {
                "limits": [
                    {
                        "name": "api-requests-per-minute",
                        "metric": GATEWAY_QUOTA_METRIC,
                        "unit": "1/min/{project}",
                        "values": {"STANDARD": GATEWAY_STANDARD_PER_MINUTE},
                    }
                ]
            },
        },
        "paths": paths,
    }
