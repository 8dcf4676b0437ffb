"""Moving a codex thread between workers: locate, pack and restore CODEX_HOME session state.

`codex exec resume <thread_id>` needs the thread's rollout file(s) under `sessions/`. The SQLite
state databases are deliberately NOT carried: they record the rollout's absolute path on the
original worker (threads.rollout_path), and a restored copy makes resume fail with "no rollout
found" once that path is gone. Without them codex rebuilds its state from the rollout files.
Config, model catalog, skills and logs stay behind too: the restoring worker writes its own.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import tarfile
from pathlib import Path

from worker.codex.workspace import ArchiveLimits, UnsafeArchiveError, extract_archive

logger = logging.getLogger(__name__)

SESSIONS_DIR = "sessions"
# Host-independent index files that may sit beside `sessions/` (absent in 0.169.0 runs).
_STATE_PATTERNS = ("session_index.jsonl",)
_THREAD_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
SESSION_LIMITS = ArchiveLimits(
    max_files=10_000, max_total_bytes=1024 * 1024 * 1024, allow_symlinks=False
)


class SessionNotFound(LookupError):
    """No rollout file for the thread in this CODEX_HOME."""


def find_rollout_files(codex_home: Path, thread_id: str) -> list[Path]:
    """`sessions/YYYY/MM/DD/rollout-*-<thread_id>.jsonl`, oldest first."""
    if not _THREAD_ID.match(thread_id):
        raise ValueError(f"not a thread id: {thread_id!r}")
    root = codex_home / SESSIONS_DIR
    if not root.is_dir():
        return []
    return sorted(root.glob(f"*/*/*/rollout-*-{thread_id}.jsonl"))


def _state_files(codex_home: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in _STATE_PATTERNS:
        for path in codex_home.glob(pattern):
            if path.is_file() and not path.is_symlink():
                found.add(path)
    return sorted(found)


def pack_session_state(codex_home: Path, thread_id: str | None = None) -> bytes:
    """tar.gz of `sessions/`; checks the thread is there when ``thread_id`` is given.

    Pack only after codex exited, so the rollout is complete.
    """
    if thread_id is not None and not find_rollout_files(codex_home, thread_id):
        raise SessionNotFound(f"no rollout for thread {thread_id} in {codex_home}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        sessions = codex_home / SESSIONS_DIR
        if sessions.is_dir():
            for path in sorted(sessions.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    tar.add(path, arcname=path.relative_to(codex_home).as_posix())
        for path in _state_files(codex_home):
            tar.add(path, arcname=path.name)
    blob = buf.getvalue()
    logger.info("packed session state of %s: %d bytes", codex_home, len(blob))
    return blob


def unpack_session_state(
    blob: bytes, codex_home: Path, limits: ArchiveLimits = SESSION_LIMITS
) -> list[str]:
    """Restore a packed state into ``codex_home`` (before `prepare_codex_home` or after).

    The blob is treated like any other untrusted archive; only `sessions/` entries (and the
    index file) are accepted.
    """
    staging = codex_home / ".restore"
    try:
        written = extract_archive(blob, staging, limits)
        for rel in written:
            top = rel.split("/", 1)[0]
            if "/" in rel and top != SESSIONS_DIR:
                raise UnsafeArchiveError(f"unexpected entry {rel!r} in session state")
            if "/" not in rel and not any(Path(rel).match(p) for p in _STATE_PATTERNS):
                raise UnsafeArchiveError(f"unexpected entry {rel!r} in session state")
        for rel in written:
            target = codex_home / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).replace(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
