"""Building .tar.gz and .zip payloads for tests (workspace archives, upload drops, hostile
archives)."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from collections.abc import Mapping
from typing import Literal


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


def damaged_zip(name: str, data: bytes, damage: Literal["deflate", "method"]) -> bytes:
    """A one-member zip whose member cannot be read: its deflate stream garbled, or its
    compression method one Python does not implement (98, PPMd)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if damage == "deflate":
        start = 30 + len(name.encode())  # the local header has no extra field here
        raw[start : start + 8] = b"\xff" * 8  # block type 3: reserved, invalid
    else:
        raw[8:10] = struct.pack("<H", 98)
        central = raw.index(b"PK\x01\x02")
        raw[central + 10 : central + 12] = struct.pack("<H", 98)
    return bytes(raw)
