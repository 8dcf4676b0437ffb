"""codex's state databases, made once per worker and copied into each new job's CODEX_HOME.

Before it even reads its prompt, `codex exec` creates and migrates its SQLite databases in
CODEX_HOME (state, logs, goals, memories, queue: some seventy migrations). On a fresh home that
is about 50 ms of every run (a trivial scripted job: 414 → 362 ms p50 on a 2-core machine). A
worker has codex make them once, with the worker's own binary and settings, and gives each new
job's home a copy: what codex would have made itself at that point, without the wait.

Only new threads get the copy. The state database records that its rollout backfill is done;
a resumed thread brings its rollout files with it, and codex must find them on its own, so a
resume starts from a fresh home as before.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from worker.codex.config import CodexConfig, prepare_codex_home
from worker.codex.env import build_codex_env
from worker.codex.process import CodexRunSpec, build_command

log = logging.getLogger(__name__)

_PATTERN = "*.sqlite"
# It stops as soon as it finds no prompt (~0.1 s); a worker start must not hang on it.
_TIMEOUT_S = 20.0


def build_state_template(binary: Path, root: Path, config: CodexConfig) -> Path | None:
    """Run codex once with no prompt in `root` (which is replaced) and keep the databases it
    made. Returns the directory holding them, or None when there is nothing usable (codex
    changed its start-up, or failed before it): jobs then start on fresh homes, as before."""
    started = time.monotonic()
    try:
        shutil.rmtree(root, ignore_errors=True)
        workdir = root / "workspace"
        workdir.mkdir(parents=True)
        home = prepare_codex_home(root / "codex", config)
        env = build_codex_env(
            home=home.home, codex_home=home.codex_home, tmp_dir=home.tmp_dir, git_ceiling=root
        )
        # Prompt "-": read it from stdin, which is empty, so codex stops right there.
        spec = CodexRunSpec(binary=binary, workdir=workdir, prompt="-", env=env)
        subprocess.run(
            build_command(spec, root / "last-message.txt", None),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            cwd=workdir,
            timeout=_TIMEOUT_S,
            check=False,  # it exits 1 ("no prompt"); what counts is the databases it left
        )
        databases = [_settle(path) for path in sorted(home.codex_home.glob(_PATTERN))]
    except (OSError, subprocess.SubprocessError, sqlite3.Error) as exc:
        log.warning("codex state databases not prepared; jobs start on fresh homes: %s", exc)
        return None
    if not databases:
        log.warning("codex made no state databases before reading its prompt; not seeding")
        return None
    log.info(
        "codex state databases prepared",
        extra={
            "fields": {
                "databases": [p.name for p in databases],
                "dir": str(home.codex_home),
                "ms": round((time.monotonic() - started) * 1000, 1),
            }
        },
    )
    return home.codex_home


def seed_codex_home(template: Path, codex_home: Path) -> list[str]:
    """Copy the template's databases into `codex_home` (never over one already there)."""
    copied = []
    for source in sorted(template.glob(_PATTERN)):
        target = codex_home / source.name
        if not target.exists():
            shutil.copyfile(source, target)
            copied.append(source.name)
    return copied


def _settle(path: Path) -> Path:
    """Fold the write-ahead log into the database file (closing the last connection removes
    the log), so one file is the whole database; refuse one without codex's migrations."""
    with sqlite3.connect(path) as db:
        (migrations,) = db.execute("SELECT count(*) FROM _sqlx_migrations").fetchone()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    if migrations == 0:
        raise sqlite3.DatabaseError(f"{path.name} has no migrations applied")
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:
        raise sqlite3.DatabaseError(f"{path.name}: its write-ahead log could not be folded in")
    for leftover in (wal, Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    return path
