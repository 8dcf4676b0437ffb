"""The checked-in API descriptions are exactly what the app generates, and list its routes."""

from __future__ import annotations

from pathlib import Path

import yaml

from api.app import create_app
from api.openapi import gateway_yaml, openapi_yaml
from api.openapi_doc import GATEWAY_DEADLINE_S, app_operations
from api.settings import ApiSettings

REPO = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete"}


def _ops(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(p, m) for p, item in paths.items() for m in item if m in METHODS}


def test_checked_in_openapi_is_generated() -> None:
    assert (REPO / "openapi.yaml").read_text() == openapi_yaml(), (
        "regenerate: python -m api.openapi > openapi.yaml"
    )


def test_checked_in_gateway_document_is_generated() -> None:
    assert (REPO / "api-gateway.yaml").read_text() == gateway_yaml(), (
        "regenerate: python -m api.openapi --gateway > api-gateway.yaml"
    )


def test_both_documents_list_exactly_the_app_routes() -> None:
    expected = app_operations(create_app(ApiSettings()))
    assert ("/v2/exec", "post") in expected
    assert ("/v2/jobs/{job_id}:cancel", "post") in expected
    openapi = yaml.safe_load((REPO / "openapi.yaml").read_text())
    gateway = yaml.safe_load((REPO / "api-gateway.yaml").read_text())
    assert _ops(openapi) == expected
    assert _ops(gateway) == expected
    assert openapi["openapi"].startswith("3.1")
    assert gateway["swagger"] == "2.0"


def test_gateway_document_shape() -> None:
    gateway = yaml.safe_load((REPO / "api-gateway.yaml").read_text())
    assert gateway["securityDefinitions"]["api_key"] == {
        "type": "apiKey",
        "name": "X-API-KEY",
        "in": "header",
    }
    assert gateway["securityDefinitions"]["oauth2"]["type"] == "oauth2"
    limits = gateway["x-google-management"]["quota"]["limits"]
    assert limits[0]["values"] == {"STANDARD": 1000}
    assert limits[0]["unit"] == "1/min/{project}"
    for path, item in gateway["paths"].items():
        for op in item.values():
            assert op["x-google-backend"]["address"] == "${API_URL}"
            # The API checks the gateway's ID token for this audience (decision 0206).
            assert op["x-google-backend"]["jwt_audience"] == "${API_AUDIENCE}"
            if path not in ("/health", "/ready"):
                assert op["security"] == [{"api_key": []}, {"oauth2": []}]
                assert op["x-google-quota"]["metricCosts"] == {"api-requests": 1}


def test_openapi_document_is_valid() -> None:
    import openapi_spec_validator

    openapi_spec_validator.validate(yaml.safe_load((REPO / "openapi.yaml").read_text()))


def test_a_sync_wait_ends_before_the_gateway_gives_up_on_the_backend() -> None:
    # Past the gateway's deadline the caller would get a 504 instead of the 202 fallback.
    defaults = ApiSettings.model_fields
    wait = defaults["sync_max_wait_s"].default
    assert wait + 30 <= GATEWAY_DEADLINE_S
