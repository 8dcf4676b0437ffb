"""Cloud Storage access (fake-gcs-server locally via STORAGE_EMULATOR_HOST).

Error details name objects but never buckets or gs:// URLs: they can reach API callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import google.cloud.storage as storage
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

from shared.errors import Conflict, DependencyUnavailable, NotFound
from shared.settings import Settings

READ_CHUNK_BYTES = 4 * 1_048_576
_NO_BUCKET = "storage bucket does not exist"


@dataclass(frozen=True)
class BlobInfo:
    bucket: str
    name: str
    size: int
    content_type: str | None
    generation: int | None


class BlobStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def client(self) -> storage.Client:
        if self._settings.storage_emulator_host:
            return storage.Client(
                project=self._settings.project_id,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            )
        return storage.Client(project=self._settings.project_id)

    def bucket_name(self, bucket_key: str) -> str:
        return self._settings.topology.bucket(bucket_key)

    def put(
        self,
        bucket: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_generation_match: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        blob = self.client.bucket(bucket).blob(name)
        if metadata:
            blob.metadata = metadata
        try:
            blob.upload_from_string(
                data, content_type=content_type, if_generation_match=if_generation_match
            )
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"object {name} already exists") from exc
        except gexc.NotFound as exc:
            raise NotFound(_NO_BUCKET) from exc
        except gexc.GoogleAPICallError as exc:
            raise DependencyUnavailable(f"storage write failed: {exc}") from exc
        return _info(blob)

    def get(
        self,
        bucket: str,
        name: str,
        *,
        max_bytes: int | None = None,
        generation: int | None = None,
    ) -> bytes:
        """The object's bytes; with `generation`, that version's (NotFound once replaced)."""
        blob = self.client.bucket(bucket).blob(name, generation=generation)
        try:
            if max_bytes is not None:
                blob.reload()
                if blob.size is not None and blob.size > max_bytes:
                    raise_too_large(name, blob.size, max_bytes)
            return bytes(blob.download_as_bytes())
        except gexc.NotFound as exc:
            raise NotFound(f"object {name} not found") from exc
        except gexc.GoogleAPICallError as exc:
            raise DependencyUnavailable(f"storage read failed: {exc}") from exc

    def read_chunks(
        self,
        bucket: str,
        name: str,
        *,
        size: int,
        generation: int | None,
        chunk_size: int = READ_CHUNK_BYTES,
    ) -> Iterator[bytes]:
        """An object's `size` bytes as ranged reads of at most `chunk_size`, so no size limit
        or whole-object buffer is needed. Pinned to `generation`: an overwrite between reads
        ends the iteration with NotFound instead of splicing two versions together."""
        blob = self.client.bucket(bucket).blob(name, generation=generation)
        for start in range(0, size, chunk_size):
            end = min(start + chunk_size, size) - 1  # inclusive
            try:
                # The whole-object checksum cannot be checked on a range.
                data = blob.download_as_bytes(start=start, end=end, checksum=None)
            except gexc.NotFound as exc:
                raise NotFound(f"object {name} not found") from exc
            except gexc.GoogleAPICallError as exc:
                raise DependencyUnavailable(f"storage read failed: {exc}") from exc
            yield bytes(data)

    def stat(self, bucket: str, name: str) -> BlobInfo | None:
        try:
            blob = self.client.bucket(bucket).get_blob(name)
        except gexc.GoogleAPICallError as exc:
            raise DependencyUnavailable(f"storage read failed: {exc}") from exc
        return _info(blob) if blob is not None else None

    def list(self, bucket: str, prefix: str = "") -> list[BlobInfo]:
        try:
            return [_info(b) for b in self.client.list_blobs(bucket, prefix=prefix)]
        except gexc.NotFound as exc:
            raise NotFound(_NO_BUCKET) from exc
        except gexc.GoogleAPICallError as exc:
            raise DependencyUnavailable(f"storage list failed: {exc}") from exc

    def signed_url(self, bucket: str, name: str, *, ttl: timedelta) -> str | None:
        """A V4 signed GET URL, or None where signing is impossible (emulator, no key)."""
        if self._settings.storage_emulator_host:
            return None
        try:
            blob = self.client.bucket(bucket).blob(name)
            return str(blob.generate_signed_url(version="v4", expiration=ttl, method="GET"))
        except (AttributeError, ValueError, TypeError):
            return None


def raise_too_large(name: str, size: int, limit: int) -> None:
    from shared.errors import PayloadTooLarge

    raise PayloadTooLarge(f"object {name} is {size} bytes (limit {limit})")


def _info(blob: storage.Blob) -> BlobInfo:
    return BlobInfo(
        bucket=blob.bucket.name,
        name=blob.name,
        size=int(blob.size or 0),
        content_type=blob.content_type,
        generation=int(blob.generation) if blob.generation is not None else None,
    )
