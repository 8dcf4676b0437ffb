"""Job workspaces: create, fill (git clone or untrusted archive), snapshot, diff, export.

Archives come from users, so extraction never trusts a header: every path is normalised and
checked, links must resolve inside the workspace, nothing is written through a link, and sizes
are counted on the bytes actually decompressed (a zip bomb lies about its sizes).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import logging
import os
import posixpath
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from shared.archives import ARCHIVE_READ_ERRORS

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_GIT_PATH = "/usr/local/bin:/usr/bin:/bin"


class WorkspaceError(Exception):
    """Base class for workspace preparation failures."""


class UnsafeArchiveError(WorkspaceError):
    """An uploaded archive was refused; ``reason`` is safe to show to the job's owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GitCloneError(WorkspaceError):
    """Cloning or checking out the requested ref failed (or took too long)."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = 20_000
    max_total_bytes: int = 512 * 1024 * 1024
    max_file_bytes: int = 256 * 1024 * 1024
    allow_symlinks: bool = True


# ---------------------------------------------------------------------------------------------
# Creating and filling


def prepare_empty(path: Path) -> Path:
    """An empty directory at ``path`` (created, or emptied if it exists)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    if path.exists():
        _empty_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _empty_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _git_env() -> dict[str, str]:
    # A clean environment: no credentials helpers, no prompts, no user or system config.
    return {
        "PATH": _GIT_PATH,
        "HOME": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
    }


def _run_git(args: list[str], cwd: Path | None, deadline_s: float) -> str:
    # Own process group so a timeout also stops git's helpers (remote-https, ssh, ...).
    proc = subprocess.Popen(
        ["git", "-c", "protocol.ext.allow=never", *args],
        cwd=cwd,
        env=_git_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=max(deadline_s, 0.1))
    except subprocess.TimeoutExpired as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GitCloneError(f"git {args[0]} timed out after {deadline_s:.0f} s") from exc
    if proc.returncode != 0:
        detail = (err or out).strip().splitlines()[-1:] or [""]
        raise GitCloneError(f"git {args[0]} failed ({proc.returncode}): {detail[0]}")
    return out


def clone_repo(url: str, dest: Path, ref: str | None = None, *, timeout_s: float = 300.0) -> str:
    """Clone ``url`` into the empty directory ``dest``, check out ``ref``; returns the commit.

    Blocking; call it through ``asyncio.to_thread`` from async code.
    """
    if url.startswith("-") or (ref is not None and ref.startswith("-")):
        raise GitCloneError("url and ref must not start with '-'")
    deadline = time.monotonic() + timeout_s
    prepare_empty(dest)
    _run_git(["clone", "--quiet", "--no-hardlinks", "--", url, str(dest)], None, timeout_s)
    if ref:
        _run_git(["checkout", "--quiet", "--detach", ref, "--"], dest, deadline - time.monotonic())
    sha = _run_git(["rev-parse", "HEAD"], dest, deadline - time.monotonic()).strip()
    logger.info("cloned %s at %s", url, sha)
    return sha


# ---------------------------------------------------------------------------------------------
# Safe archive extraction


def _safe_relpath(name: str) -> str:
    """Normalised relative POSIX path of an archive member, or UnsafeArchiveError."""
    if not name or "\x00" in name:
        raise UnsafeArchiveError(f"invalid member name {name!r}")
    if "\\" in name:
        raise UnsafeArchiveError(f"backslash in member name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchiveError(f"'..' in path {name!r}")
    return "/".join(parts)


@dataclass
class _Extractor:
    dest: Path
    limits: ArchiveLimits
    files: int = 0
    total: int = 0
    written: list[str] = field(default_factory=list)
    regular: set[str] = field(default_factory=set)

    def count(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise UnsafeArchiveError(f"too many entries (limit {self.limits.max_files})")

    def target(self, rel: str) -> Path:
        """Destination path for ``rel``; refuses to write through links or over directories."""
        path = self.dest
        parts = rel.split("/")
        for part in parts[:-1]:
            path = path / part
            if path.is_symlink():
                raise UnsafeArchiveError(f"path {rel!r} goes through a link")
            if path.exists() and not path.is_dir():
                raise UnsafeArchiveError(f"path {rel!r} goes through a file")
            path.mkdir(exist_ok=True)
        path = path / parts[-1]
        if path.is_symlink():
            raise UnsafeArchiveError(f"{rel!r} would overwrite a link")
        if path.is_dir():
            raise UnsafeArchiveError(f"{rel!r} would overwrite a directory")
        return path

    def mkdir(self, rel: str) -> None:
        self.count()
        if not rel:
            return
        path = self.dest
        for part in rel.split("/"):
            path = path / part
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise UnsafeArchiveError(f"directory {rel!r} clashes with an existing entry")
            path.mkdir(exist_ok=True)

    def write(self, rel: str, src: IO[bytes], mode: int) -> None:
        self.count()
        if not rel:
            raise UnsafeArchiveError("file entry with an empty name")
        path = self.target(rel)
        size = 0
        with open(path, "wb") as out:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                self.total += len(chunk)
                if size > self.limits.max_file_bytes:
                    raise UnsafeArchiveError(
                        f"{rel!r} expands beyond {self.limits.max_file_bytes} bytes"
                    )
                if self.total > self.limits.max_total_bytes:
                    raise UnsafeArchiveError(
                        f"archive expands beyond {self.limits.max_total_bytes} bytes"
                    )
                out.write(chunk)
        # Keep only the executable bit: no setuid/setgid/sticky, nothing world-writable.
        path.chmod(0o755 if mode & 0o111 else 0o644)
        self.written.append(rel)
        self.regular.add(rel)

    def symlink(self, rel: str, link_target: str) -> None:
        self.count()
        if not self.limits.allow_symlinks:
            raise UnsafeArchiveError(f"link {rel!r} not allowed")
        if not link_target or link_target.startswith("/") or "\x00" in link_target:
            raise UnsafeArchiveError(f"link {rel!r} points outside the workspace")
        parent = posixpath.dirname(rel)
        resolved = posixpath.normpath(posixpath.join(parent, link_target))
        if resolved == ".." or resolved.startswith("../"):
            raise UnsafeArchiveError(f"link {rel!r} points outside the workspace")
        path = self.target(rel)
        path.symlink_to(link_target)
        self.written.append(rel)

    def hardlink(self, rel: str, link_target: str) -> None:
        # Materialised as a copy: a real hard link could alias a file outside the workspace.
        source = _safe_relpath(link_target)
        if source not in self.regular:
            raise UnsafeArchiveError(f"hard link {rel!r} to unknown member {link_target!r}")
        with open(self.dest / source, "rb") as src:
            self.write(rel, src, (self.dest / source).stat().st_mode)

    def verify_links(self) -> None:
        """Final check: every link, resolved through the links that now exist, stays inside."""
        root = os.path.realpath(self.dest)
        for dirpath, dirnames, filenames in os.walk(self.dest):
            for name in (*dirnames, *filenames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    real = os.path.realpath(full)
                    if real != root and not real.startswith(root + os.sep):
                        rel = os.path.relpath(full, self.dest)
                        raise UnsafeArchiveError(f"link {rel!r} resolves outside the workspace")


def extract_archive(
    source: bytes | Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()
) -> list[str]:
    """Extract a tar(.gz/.bz2/.xz) or zip archive into ``dest``; returns the paths written.

    On refusal ``dest`` is emptied again and UnsafeArchiveError says why.
    """
    dest.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(dest=dest.resolve(), limits=limits)
    try:
        with _open_source(source) as fh:
            if zipfile.is_zipfile(fh):
                fh.seek(0)
                _extract_zip(fh, extractor)
            else:
                fh.seek(0)
                _extract_tar(fh, extractor)
        extractor.verify_links()
    except UnsafeArchiveError:
        _empty_dir(dest)
        raise
    except ARCHIVE_READ_ERRORS as exc:
        _empty_dir(dest)
        raise UnsafeArchiveError(f"unreadable archive: {exc}") from exc
    return extractor.written


@contextlib.contextmanager
def _open_source(source: bytes | Path) -> Iterator[IO[bytes]]:
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    else:
        with open(source, "rb") as fh:
            yield fh


def _extract_tar(fh: IO[bytes], ex: _Extractor) -> None:
    try:
        archive = tarfile.open(fileobj=fh, mode="r:*")  # noqa: SIM115 - closed by `with` below
    except tarfile.ReadError as exc:
        raise UnsafeArchiveError("not a tar or zip archive") from exc
    with archive:
        # Iterating (not getmembers()) so a huge member list is refused before it is all read.
        for member in archive:
            rel = _safe_relpath(member.name)
            if member.isdir():
                ex.mkdir(rel)
            elif member.isfile():
                src = archive.extractfile(member)
                if src is None:
                    raise UnsafeArchiveError(f"unreadable member {member.name!r}")
                with src:
                    ex.write(rel, src, member.mode)
            elif member.issym():
                ex.symlink(rel, member.linkname)
            elif member.islnk():
                ex.hardlink(rel, member.linkname)
            else:
                raise UnsafeArchiveError(f"special file {member.name!r} not allowed")


def _extract_zip(fh: IO[bytes], ex: _Extractor) -> None:
    with zipfile.ZipFile(fh) as archive:
        infos = archive.infolist()
        if len(infos) > ex.limits.max_files:
            raise UnsafeArchiveError(f"too many entries (limit {ex.limits.max_files})")
        for info in infos:
            rel = _safe_relpath(info.filename)
            mode = (info.external_attr >> 16) & 0xFFFF
            if info.is_dir():
                ex.mkdir(rel)
            elif stat.S_ISLNK(mode):
                with archive.open(info) as src:
                    target = src.read(4096).decode("utf-8", errors="strict")
                ex.symlink(rel, target)
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                # Zips written without Unix attributes carry no file type bits: regular file.
                raise UnsafeArchiveError(f"special file {info.filename!r} not allowed")
            else:
                with archive.open(info) as src:
                    ex.write(rel, src, mode)


# ---------------------------------------------------------------------------------------------
# Snapshot, diff, export

ChangeKind = Literal["added", "modified", "deleted"]
_SKIP_DIRS = frozenset({".git"})


@dataclass(frozen=True)
class FileState:
    sha256: str
    size: int
    mode: int
    is_symlink: bool = False


@dataclass(frozen=True)
class Snapshot:
    root: Path
    files: Mapping[str, FileState]
    # Old contents of small files, kept so a modification can be shown as a unified diff.
    contents: Mapping[str, bytes]


@dataclass(frozen=True)
class FileChange:
    path: str
    kind: ChangeKind
    binary: bool = False


@dataclass(frozen=True)
class WorkspaceDiff:
    changes: tuple[FileChange, ...]
    patch: str
    truncated: bool = False
    # Every file present afterwards (what a session save archives, without walking again).
    files: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.changes]


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS or dirpath != str(root))
        for name in sorted(filenames) + [
            d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        ]:
            full = Path(dirpath) / name
            yield full.relative_to(root).as_posix(), full


Fingerprint = frozenset[tuple[str, int, int, int, int]]


def fingerprint(root: Path) -> Fingerprint:
    """Path, size, mtime, mode and inode of everything `snapshot` would read: equal
    fingerprints taken before and after a diff mean nothing was written in between, for the
    cost of a stat per file instead of reading them all."""
    found: set[tuple[str, int, int, int, int]] = set()
    for rel, full in _walk(root):
        try:
            st = full.lstat()
        except OSError:
            continue
        found.add((rel, st.st_size, st.st_mtime_ns, st.st_mode, st.st_ino))
    return frozenset(found)


def _state(path: Path) -> tuple[FileState, bytes] | None:
    """A file's state and kept bytes; None for what is not a regular file or a link (FIFOs,
    sockets, devices are no workspace content, and opening a FIFO waits for a writer)."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        data = os.readlink(path).encode()
        return FileState(hashlib.sha256(data).hexdigest(), len(data), st.st_mode, True), data
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha256()
    head = bytearray()
    # Non-blocking and no-follow: the agent's leftovers may swap the file after the lstat.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            if len(head) <= _MAX_KEPT_FILE:
                head += chunk
    return FileState(digest.hexdigest(), st.st_size, st.st_mode), bytes(head)


_MAX_KEPT_FILE = 1024 * 1024
_MAX_KEPT_TOTAL = 64 * 1024 * 1024


def snapshot(root: Path) -> Snapshot:
    """Hashes of every file under ``root`` (``.git`` excluded) plus small files' contents."""
    files: dict[str, FileState] = {}
    contents: dict[str, bytes] = {}
    kept = 0
    for rel, full in _walk(root):
        try:
            found = _state(full)
        except OSError:
            continue
        if found is None:
            continue
        state, data = found
        files[rel] = state
        if len(data) <= _MAX_KEPT_FILE and kept + len(data) <= _MAX_KEPT_TOTAL:
            contents[rel] = data
            kept += len(data)
    return Snapshot(root=root, files=files, contents=contents)


def _is_binary(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def diff(before: Snapshot, root: Path, *, max_patch_bytes: int = 2 * 1024 * 1024) -> WorkspaceDiff:
    """Changes under ``root`` since ``before``, with a unified diff of the text files."""
    after = snapshot(root)
    changes: list[FileChange] = []
    chunks: list[str] = []
    size = 0
    truncated = False
    for rel in sorted(set(before.files) | set(after.files)):
        old = before.files.get(rel)
        new = after.files.get(rel)
        if old is not None and new is not None and old.sha256 == new.sha256:
            continue
        kind: ChangeKind = "added" if old is None else "deleted" if new is None else "modified"
        old_data = before.contents.get(rel, b"") if old is not None else b""
        new_data = after.contents.get(rel, b"") if new is not None else b""
        missing = (old is not None and rel not in before.contents) or (
            new is not None and rel not in after.contents
        )
        binary = _is_binary(old_data) or _is_binary(new_data)
        changes.append(FileChange(rel, kind, binary))
        if binary or missing:
            text = f"Binary or large file {rel} {kind}\n"
        else:
            text = "".join(
                difflib.unified_diff(
                    old_data.decode().splitlines(keepends=True),
                    new_data.decode().splitlines(keepends=True),
                    fromfile="/dev/null" if old is None else f"a/{rel}",
                    tofile="/dev/null" if new is None else f"b/{rel}",
                )
            )
            if text and not text.endswith("\n"):
                text += "\n\\ No newline at end of file\n"
        if size + len(text) > max_patch_bytes:
            truncated = True
            continue
        size += len(text)
        chunks.append(text)
    return WorkspaceDiff(
        changes=tuple(changes),
        patch="".join(chunks),
        truncated=truncated,
        files=tuple(after.files),
    )


def archive_changed(root: Path, files: Iterable[str | FileChange]) -> bytes:
    """tar.gz of the named files that still exist (deleted ones are simply absent)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for entry in files:
            rel = entry.path if isinstance(entry, FileChange) else entry
            rel = _safe_relpath(rel)
            full = root / rel
            if full.is_symlink() or full.is_file():
                tar.add(full, arcname=rel, recursive=False)
    return buf.getvalue()
