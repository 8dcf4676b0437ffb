"""`python -m worker --host H --port P`: the worker service (one per StatefulSet pod)."""

from __future__ import annotations

import argparse

import uvicorn

from shared.log import configure_logging
from shared.settings import get_settings
from worker.service import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="worker")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level, settings.project_id)
    advertise = settings.worker_advertise_url or f"http://{args.host}:{args.port}"
    uvicorn.run(
        create_app(advertise_url=advertise),
        host=args.host,
        port=args.port,
        log_level="warning",
        # The worker supervises codex subprocesses through the standard asyncio loop (its
        # process-group signalling is tested on that loop); request volume here is small.
        loop="asyncio",
        # Requests are short (jobs run in the background); drain is handled in the lifespan.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
