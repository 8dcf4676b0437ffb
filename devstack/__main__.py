"""`python -m devstack` (what `make dev` runs): start the local platform, print what a client
needs, and run until Ctrl-C. Everything started is stopped by PID on exit."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from devstack.preflight import MissingDependency
from devstack.stack import Stack, StackOptions
from shared.log import configure_logging

log = logging.getLogger("devstack")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--slots", type=int, default=2, help="job slots per worker")
    parser.add_argument("--no-model", action="store_true", help="do not start the scripted model")
    parser.add_argument(
        "--sweep-interval", type=float, default=5.0, help="seconds between sweeper runs"
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="logs and env file root")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    options = StackOptions(
        workers=args.workers,
        worker_slots=args.slots,
        model_server=not args.no_model,
        sweep_interval_s=args.sweep_interval,
        state_dir=args.state_dir,
    )
    stack = Stack(options)
    started = time.monotonic()
    try:
        stack.start()
    except MissingDependency as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    try:
        out = sys.stdout
        out.write(f"codex-cloud local stack up in {time.monotonic() - started:.1f}s\n\nURLs:\n")
        for name, url in sorted(stack.urls.items()):
            out.write(f"  {name:16} {url}\n")
        out.write("\nClient environment (also in " + str(stack.write_env_file()) + "):\n")
        for key, value in sorted(stack.env.items()):
            out.write(f"  export {key}={value}\n")
        out.write(f"\nLogs: {stack.state_dir / 'logs'}\nPress Ctrl-C to stop.\n")
        out.flush()
        while not stop.wait(1.0):
            dead = [p.name for p in stack.group.processes if not p.alive()]
            if dead:
                log.error("stack process exited: %s", ", ".join(dead))
                return 1
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
