"""`python -m api --host H --port P`: serve the API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from api.settings import get_api_settings
from shared.log import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers", type=int, default=0, help="server processes (default: CODEX_CLOUD_API_WORKERS)"
    )
    args = parser.parse_args(argv)
    settings = get_api_settings()
    configure_logging(settings.log_level, settings.project_id)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        ws="websockets-sansio",
        # C event loop and HTTP parser: about a third less CPU per request than the pure-Python
        # defaults, which matters when the API shares its cores.
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        workers=args.workers or settings.api_workers,
    )


if __name__ == "__main__":
    main()
