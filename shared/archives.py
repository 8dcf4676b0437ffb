"""What reading a damaged or unsupported archive can raise, beyond the archive modules' own
errors. Upload ingest (the manifest) and the worker (the workspace) both treat these as a bad
archive, a permanent problem with the upload, not a crash to retry."""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib

ARCHIVE_READ_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    OSError,  # gzip.BadGzipFile and bz2's invalid data
    ValueError,
    zlib.error,  # a corrupt deflate stream inside a zip member
    lzma.LZMAError,
    NotImplementedError,  # a zip compression method this Python lacks
    RuntimeError,  # an encrypted zip member (and RecursionError)
)
