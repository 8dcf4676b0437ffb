"""Print the API's published descriptions, generated from the app.

    python -m api.openapi > openapi.yaml                # OpenAPI 3.1
    python -m api.openapi --gateway > api-gateway.yaml  # Swagger 2.0 for API Gateway

Tests check that the checked-in files equal this output.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from api.app import create_app
from api.openapi_doc import gateway_document
from api.settings import ApiSettings


def render(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def openapi_yaml() -> str:
    # Fixed settings: the document must not depend on the environment it is generated in.
    return render(create_app(ApiSettings(environment="local")).openapi())


def gateway_yaml() -> str:
    return render(gateway_document(create_app(ApiSettings(environment="local"))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.openapi", description=__doc__)
    parser.add_argument("--gateway", action="store_true", help="the API Gateway document")
    args = parser.parse_args(argv)
    sys.stdout.write(gateway_yaml() if args.gateway else openapi_yaml())


if __name__ == "__main__":
    main()
