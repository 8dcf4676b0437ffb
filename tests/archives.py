"""Building .tar.gz payloads for tests (workspace archives, upload drops, hostile archives)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping


def tar_gz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """Exactly these members, links and odd entries included; a member's size is its data's."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tgz(files: Mapping[str, bytes]) -> bytes:
    """Regular files by path."""
    return tar_gz(*((tarfile.TarInfo(name), data) for name, data in files.items()))
