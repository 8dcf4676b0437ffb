"""Locating the pinned codex binary (the vendored one from the repo's npm install)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

BINARY_ENV_VAR = "CODEX_CLOUD_CODEX_BIN"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# npm package and Rust target per machine; calling the binary directly skips the node shim.
_TARGETS = {
    "x86_64": ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    "aarch64": ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
}


class CodexBinaryNotFound(FileNotFoundError):
    """No usable codex binary at the configured or conventional location."""


def find_codex_binary(repo_root: Path | None = None) -> Path:
    """``$CODEX_CLOUD_CODEX_BIN`` if set, else the vendored binary under node_modules."""
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        candidate = Path(override)
        if _executable(candidate):
            return candidate.resolve()
        raise CodexBinaryNotFound(f"{BINARY_ENV_VAR}={override} is not an executable file")
    root = repo_root if repo_root is not None else _REPO_ROOT
    machine = platform.machine()
    if machine not in _TARGETS:
        raise CodexBinaryNotFound(f"no vendored codex for machine type {machine!r}")
    package, triple = _TARGETS[machine]
    candidate = root / "node_modules" / "@openai" / package / "vendor" / triple / "bin" / "codex"
    if _executable(candidate):
        return candidate.resolve()
    raise CodexBinaryNotFound(f"{candidate} missing: run `npm install` at the repository root")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
