"""Workspace preparation: safe archive extraction, git clone, snapshot/diff/export."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Literal

import pytest

from tests.archives import damaged_zip, tar_gz
from worker.codex.sessions import pack_session_state, unpack_session_state
from worker.codex.workspace import (
    ArchiveLimits,
    GitCloneError,
    UnsafeArchiveError,
    archive_changed,
    clone_repo,
    diff,
    extract_archive,
    prepare_empty,
    snapshot,
)

pytestmark = pytest.mark.unit


def file_member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def link_member(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def make_zip(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buf.getvalue()


def test_tar_gz_with_internal_symlink_extracts(tmp_path: Path) -> None:
    blob = tar_gz(
        file_member("./src/app.py", b"print(1)\n", 0o4755),
        file_member("README.md", b"# hi\n"),
        link_member("src/readme-link", "../README.md"),
        link_member("copy.md", "README.md", hard=True),
    )
    dest = tmp_path / "ws"

    written = extract_archive(blob, dest)

    assert written == ["src/app.py", "README.md", "src/readme-link", "copy.md"]
    assert (dest / "src/readme-link").read_text() == "# hi\n"
    assert (dest / "copy.md").read_text() == "# hi\n"
    assert not (dest / "copy.md").is_symlink()
    # Executable bit kept, setuid dropped.
    assert (dest / "src/app.py").stat().st_mode & 0o7777 == 0o755


def test_zip_extracts_from_a_file(tmp_path: Path) -> None:
    archive = tmp_path / "upload.zip"
    archive.write_bytes(make_zip({"a/b.txt": b"b", "c.txt": b"c"}, {"a/link": "b.txt"}))

    extract_archive(archive, tmp_path / "ws")

    assert (tmp_path / "ws/a/b.txt").read_bytes() == b"b"
    assert os.readlink(tmp_path / "ws/a/link") == "b.txt"


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (tar_gz(file_member("/etc/cron.d/evil", b"x")), "absolute path"),
        (tar_gz(file_member("a/../../evil", b"x")), "'..' in path"),
        (tar_gz(link_member("evil", "/etc/passwd")), "points outside"),
        (tar_gz(link_member("evil", "../../outside")), "points outside"),
        (
            # Each link looks harmless lexically; together they escape.
            tar_gz(link_member("here", "."), link_member("up", "here/../..")),
            "points outside",
        ),
        (
            tar_gz(link_member("dir", "."), file_member("dir/x", b"x")),
            "goes through a link",
        ),
        (tar_gz(link_member("h", "/etc/passwd", hard=True)), "'/etc/passwd'"),
        (make_zip({"../evil": b"x"}), "'..' in path"),
        (make_zip({"/abs": b"x"}), "absolute path"),
        (make_zip({}, {"l": "/etc"}), "points outside"),
        (b"definitely not an archive", "not a tar or zip"),
    ],
)
def test_unsafe_archives_are_refused_with_a_reason(
    tmp_path: Path, blob: bytes, reason: str
) -> None:
    dest = tmp_path / "ws"

    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(blob, dest)

    assert reason in err.value.reason
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_lexically_inside_but_really_outside_link_is_caught_after_extraction(
    tmp_path: Path,
) -> None:
    # "up" -> "here/.." looks like the workspace root, but "here" -> "." makes it resolve
    # to the workspace's parent once both links exist.
    blob = tar_gz(link_member("here", "."), link_member("sub/up", "../here/.."))

    with pytest.raises(UnsafeArchiveError, match="resolves outside"):
        extract_archive(blob, tmp_path / "ws")


def test_device_files_are_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dev/null2")
    info.type = tarfile.CHRTYPE
    with pytest.raises(UnsafeArchiveError, match="special file"):
        extract_archive(tar_gz((info, None)), tmp_path / "ws")


def test_too_many_files(tmp_path: Path) -> None:
    blob = tar_gz(*(file_member(f"f{i}", b"") for i in range(11)))
    with pytest.raises(UnsafeArchiveError, match="too many entries"):
        extract_archive(blob, tmp_path / "ws", ArchiveLimits(max_files=10))
    zblob = make_zip({f"f{i}": b"" for i in range(11)})
    with pytest.raises(UnsafeArchiveError, match="too many entries"):
        extract_archive(zblob, tmp_path / "ws", ArchiveLimits(max_files=10))


def test_zip_bomb_is_stopped_by_decompressed_bytes(tmp_path: Path) -> None:
    blob = make_zip({"zeros.bin": b"\0" * (20 * 1024 * 1024)})
    assert len(blob) < 100_000

    with pytest.raises(UnsafeArchiveError, match="expands beyond 1048576 bytes"):
        extract_archive(blob, tmp_path / "ws", ArchiveLimits(max_total_bytes=1024 * 1024))
    assert list((tmp_path / "ws").iterdir()) == []


def test_tar_total_and_per_file_size_limits(tmp_path: Path) -> None:
    blob = tar_gz(file_member("a", b"x" * 600), file_member("b", b"x" * 600))
    with pytest.raises(UnsafeArchiveError, match="archive expands beyond 1000"):
        extract_archive(blob, tmp_path / "ws", ArchiveLimits(max_total_bytes=1000))
    with pytest.raises(UnsafeArchiveError, match="'a' expands beyond 500"):
        extract_archive(blob, tmp_path / "ws", ArchiveLimits(max_file_bytes=500))


def test_snapshot_and_diff_report_added_modified_deleted_and_binary(tmp_path: Path) -> None:
    ws = prepare_empty(tmp_path / "ws")
    (ws / "keep.txt").write_text("same\n")
    (ws / "edit.txt").write_text("one\ntwo\n")
    (ws / "gone.txt").write_text("bye\n")
    (ws / ".git").mkdir()
    (ws / ".git" / "HEAD").write_text("ref\n")
    before = snapshot(ws)

    (ws / "edit.txt").write_text("one\nthree\n")
    (ws / "gone.txt").unlink()
    (ws / "new").mkdir()
    (ws / "new" / "file.py").write_text("x = 1\n")
    (ws / "blob.bin").write_bytes(b"\0\1\2")
    (ws / ".git" / "HEAD").write_text("changed\n")
    result = diff(before, ws)

    assert [(c.path, c.kind, c.binary) for c in result.changes] == [
        ("blob.bin", "added", True),
        ("edit.txt", "modified", False),
        ("gone.txt", "deleted", False),
        ("new/file.py", "added", False),
    ]
    assert "--- a/edit.txt\n+++ b/edit.txt\n" in result.patch
    assert "-two\n+three\n" in result.patch
    assert "--- a/gone.txt\n+++ /dev/null\n" in result.patch
    assert "Binary or large file blob.bin added" in result.patch
    assert not result.truncated

    blob = archive_changed(ws, result.changes)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert sorted(tar.getnames()) == ["blob.bin", "edit.txt", "new/file.py"]
        member = tar.extractfile("edit.txt")
        assert member is not None
        assert member.read() == b"one\nthree\n"


def test_diff_patch_is_bounded(tmp_path: Path) -> None:
    ws = prepare_empty(tmp_path / "ws")
    before = snapshot(ws)
    (ws / "a.txt").write_text("a\n" * 1000)
    (ws / "b.txt").write_text("b\n")

    result = diff(before, ws, max_patch_bytes=100)

    assert result.truncated
    assert result.paths == ["a.txt", "b.txt"]
    assert len(result.patch) <= 100


def git(*args: str, cwd: Path) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_clone_local_repository_at_a_ref(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    (origin / "f.txt").write_text("v1\n")
    git("add", "f.txt", cwd=origin)
    git("commit", "-q", "-m", "v1", cwd=origin)
    git("tag", "v1", cwd=origin)
    (origin / "f.txt").write_text("v2\n")
    git("commit", "-q", "-am", "v2", cwd=origin)
    v1 = git("rev-parse", "v1", cwd=origin)

    dest = tmp_path / "ws"
    sha = clone_repo(str(origin), dest, "v1", timeout_s=30)

    assert sha == v1
    assert (dest / "f.txt").read_text() == "v1\n"
    assert clone_repo(str(origin), dest, timeout_s=30) == git("rev-parse", "HEAD", cwd=origin)
    with pytest.raises(GitCloneError, match="checkout failed"):
        clone_repo(str(origin), dest, "no-such-ref", timeout_s=30)
    with pytest.raises(GitCloneError, match="clone failed"):
        clone_repo(str(tmp_path / "nowhere"), dest, timeout_s=30)
    with pytest.raises(GitCloneError, match="must not start"):
        clone_repo("--upload-pack=evil", dest)


def test_session_state_refuses_foreign_entries(tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    with pytest.raises(UnsafeArchiveError, match="unexpected entry"):
        unpack_session_state(tar_gz(file_member("config.toml", b"x=1")), home)
    with pytest.raises(UnsafeArchiveError, match="unexpected entry"):
        unpack_session_state(tar_gz(file_member("skills/evil/SKILL.md", b"x")), home)
    assert not (home / "config.toml").exists()
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.' in path"):
        unpack_session_state(tar_gz(file_member("sessions/../../x", b"x")), home)


def test_session_state_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "a"
    thread = "01a22c84-943d-75c2-ae15-c1b7857283b6"
    rollout = src / "sessions/2026/11/30" / f"rollout-2026-11-30T12-53-35-{thread}.jsonl"
    rollout.parent.mkdir(parents=True)
    rollout.write_text('{"type":"session_meta"}\n')
    (src / "state_5.sqlite").write_bytes(b"host-specific")
    (src / "config.toml").write_text("model = 'x'\n")

    blob = pack_session_state(src, thread)
    restored = unpack_session_state(blob, tmp_path / "b")

    assert restored == [rollout.relative_to(src).as_posix()]
    assert (tmp_path / "b" / restored[0]).read_text() == '{"type":"session_meta"}\n'
    assert not (tmp_path / "b" / "state_5.sqlite").exists()
    assert not (tmp_path / "b" / ".restore").exists()


@pytest.mark.parametrize("damage", ["deflate", "method"])
def test_a_workspace_zip_that_cannot_be_decompressed_is_refused(
    tmp_path: Path, damage: Literal["deflate", "method"]
) -> None:
    data = damaged_zip("src/main.py", b"print('hi')\n" * 40, damage)
    with pytest.raises(UnsafeArchiveError, match="unreadable archive"):
        extract_archive(data, tmp_path / "ws")
    assert list((tmp_path / "ws").iterdir()) == []


def test_snapshots_skip_fifos_instead_of_blocking_on_them(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    before = snapshot(ws)
    (ws / "kept.txt").write_text("hello\n")
    # Left behind by an agent's command: reading a FIFO would wait forever for a writer.
    os.mkfifo(ws / "pipe")
    changes = diff(before, ws)
    assert changes.paths == ["kept.txt"]
    assert "pipe" not in snapshot(ws).files
