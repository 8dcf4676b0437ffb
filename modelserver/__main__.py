"""`python -m modelserver --host 127.0.0.1 --port P [--scripts DIR]`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from modelserver.app import create_app
from modelserver.scripts import ScriptRegistry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelserver",
        description="Scripted OpenAI Responses API server for offline codex runs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--scripts",
        type=Path,
        action="append",
        default=[],
        help="directory of extra *.yaml scripts (repeatable; later files override names)",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    registry = ScriptRegistry.with_builtins(args.scripts)
    logging.getLogger(__name__).info("scripts: %s", ", ".join(registry.names()))
    uvicorn.run(
        create_app(registry),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=2,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
