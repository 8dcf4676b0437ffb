"""`python -m api --host H --port P`: serve the API with uvicorn.

The port defaults to $PORT (Cloud Run's contract; the image sets 8080), else 8000. Flags win.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from api.settings import get_api_settings
from shared.log import configure_logging

LOCAL_PORT = 8000


def _env_port(parser: argparse.ArgumentParser) -> int:
    raw = os.environ.get("PORT", "").strip()
    if not raw:
        return LOCAL_PORT
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        parser.error(f"PORT must be a port number (1-65535), got {raw!r}")
    return port


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Loopback by default so a local run is not reachable from the network; the container image
    # passes --host 0.0.0.0.
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help=f"default: $PORT, else {LOCAL_PORT}")
    parser.add_argument(
        "--workers", type=int, default=0, help="server processes (default: CODEX_CLOUD_API_WORKERS)"
    )
    args = parser.parse_args(argv)
    # Read $PORT only when --port is absent, so a stray PORT cannot break an explicit --port.
    port = args.port if args.port is not None else _env_port(parser)
    settings = get_api_settings()
    configure_logging(settings.log_level, settings.project_id)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=port,
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
