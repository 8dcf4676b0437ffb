"""The channels that go around the HTTP API — Pub/Sub, the uploads bucket, API keys — through
the project's own adapters. They need Google Cloud access: the local stack's emulators (its
environment, or `.devstack/env.sh` written by `make dev`) or real credentials."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codex_cloud.config import devstack_env

if TYPE_CHECKING:
    from shared.adapters import Adapters

# Variables the Google clients and the settings read; taken from `.devstack/env.sh` when the
# caller's environment has none of them (so `make dev` in one terminal is enough).
_CLOUD_VARS = (
    "GOOGLE_CLOUD_PROJECT",
    "CODEX_CLOUD_PROJECT_ID",
    "CODEX_CLOUD_NAME_PREFIX",
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "CODEX_CLOUD_ENVIRONMENT",
)
SKIP_DIRS = frozenset({".git", "__pycache__", ".venv", "node_modules", ".mypy_cache"})
MAX_WORKSPACE_BYTES = 100 * 1024 * 1024
WORKSPACES_PREFIX = "_workspaces/"


def adapters(env: Mapping[str, str] | None = None) -> Adapters:
    """Adapters for the stack the caller points at (its emulators, or real GCP)."""
    from shared.adapters import Adapters
    from shared.settings import Settings

    source = dict(os.environ if env is None else env)
    if not any(source.get(v) for v in _CLOUD_VARS[3:6]) and not source.get("GOOGLE_CLOUD_PROJECT"):
        stack = devstack_env()
        for name in _CLOUD_VARS:
            if stack.get(name):
                source.setdefault(name, stack[name])
    # The Google client libraries read the emulator hosts from the process environment.
    for name in _CLOUD_VARS:
        if source.get(name):
            os.environ[name] = source[name]
    return Adapters(Settings())


def publish(
    adapters: Adapters,
    body: Mapping[str, Any],
    *,
    tenant: str | None,
    attributes: Mapping[str, str] | None = None,
) -> str:
    """Publish one job message to codex-jobs (docs/contracts/jobs-topic.md); the message id."""
    attrs = dict(attributes or {})
    if tenant:
        attrs["tenant"] = tenant
    return adapters.publisher.publish_json("jobs", dict(body), attrs)


def pubsub_job_id(tenant: str, key: str) -> str:
    """The job id ingest gives a message with this idempotency key (same for redeliveries)."""
    from shared.jobstore import job_id_for_key

    return job_id_for_key(tenant, key)


def upload_object_name(tenant: str | None, filename: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(filename).name
    return f"tenants/{tenant}/{stamp}-{base}" if tenant else f"{stamp}-{base}"


def upload(
    adapters: Adapters, name: str, data: bytes, *, content_type: str
) -> tuple[str, int | None]:
    """Put an object into the uploads bucket; (gs:// path, generation)."""
    bucket = adapters.storage.bucket_name("uploads")
    info = adapters.storage.put(bucket, name, data, content_type=content_type)
    return f"gs://{bucket}/{name}", info.generation


def upload_job_id(adapters: Adapters, tenant: str, name: str, generation: int) -> str:
    """The job id on_upload gives this object version (one job per generation)."""
    bucket = adapters.storage.bucket_name("uploads")
    return pubsub_job_id(tenant, f"gcs:{bucket}/{name}#{generation}")


def result_summary(adapters: Adapters, name: str) -> dict[str, Any] | None:
    """The results-bucket summary of an uploaded object's job, once written."""
    from shared.errors import NotFound

    bucket = adapters.storage.bucket_name("results")
    try:
        data: dict[str, Any] = json.loads(
            adapters.storage.get(bucket, f"uploads/{name}.result.json")
        )
    except NotFound:
        return None
    return data


def upload_error(adapters: Adapters, name: str) -> dict[str, Any] | None:
    """The error report on_upload writes for a rejected upload, if any."""
    from shared.errors import NotFound

    bucket = adapters.storage.bucket_name("uploads")
    try:
        data: dict[str, Any] = json.loads(
            adapters.storage.get(bucket, f"_errors/{name}.error.json")
        )
    except NotFound:
        return None
    return data


def tar_directory(directory: Path, extra: Mapping[str, bytes] | None = None) -> bytes:
    """A gzipped tar of the directory's files (VCS and cache folders left out), reproducible
    for the same content so the same tree uploads to the same object."""
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if any(part in SKIP_DIRS for part in rel.parts) or path.is_symlink():
                continue
            if not path.is_file():
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_WORKSPACE_BYTES:
                raise ValueError(f"{directory} is larger than {MAX_WORKSPACE_BYTES} bytes")
            _add(tar, rel.as_posix(), data, mode=path.stat().st_mode & 0o755)
        for name, data in (extra or {}).items():
            _add(tar, name, data, mode=0o644)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, *, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode or 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def upload_workspace(adapters: Adapters, directory: Path, tenant: str | None) -> dict[str, Any]:
    """Tar a local directory into the uploads bucket (under `_workspaces/`, which on_upload
    ignores) and return the ArchiveWorkspace that references it."""
    data = tar_directory(directory)
    digest = hashlib.sha256(data).hexdigest()[:24]
    name = f"{WORKSPACES_PREFIX}{tenant or 'default'}/{digest}.tar.gz"
    bucket = adapters.storage.bucket_name("uploads")
    if adapters.storage.stat(bucket, name) is None:
        adapters.storage.put(bucket, name, data, content_type="application/gzip")
    return {"type": "archive", "object": name, "bucket": bucket}


def create_key(
    adapters: Adapters,
    *,
    tenant: str,
    name: str,
    tier: str = "STANDARD",
    scopes: tuple[str, ...] = ("read", "write"),
) -> tuple[str, dict[str, Any]]:
    from shared.apikeys import create_key as _create

    created = _create(
        adapters.firestore, adapters.settings, tenant=tenant, name=name, tier=tier, scopes=scopes
    )
    return created.key, key_view(created.record)


def list_keys(adapters: Adapters, tenant: str | None) -> list[dict[str, Any]]:
    from shared.apikeys import list_keys as _list

    return [key_view(k) for k in _list(adapters.firestore, adapters.settings, tenant=tenant)]


def revoke_key(adapters: Adapters, key_id: str) -> dict[str, Any]:
    from shared.apikeys import revoke_key as _revoke

    return key_view(_revoke(adapters.firestore, adapters.settings, key_id))


def key_view(record: Any) -> dict[str, Any]:
    data: dict[str, Any] = record.model_dump(mode="json", exclude={"key_hash"})
    data["active"] = record.active
    return data
