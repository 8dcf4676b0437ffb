"""Upload-bucket ingress: a job spec or an archive dropped in the uploads bucket becomes a job.

Naming (documented in docs/contracts/uploads.md):
- tenant: `tenants/{tenant}/...` object prefix, else `settings.upload_default_tenant`;
- result summary: results bucket, `uploads/{object name}.result.json`;
- error report for a bad upload: uploads bucket, `_errors/{object name}.error.json`
  (the upload itself is never deleted); objects under `_errors/`, `_results/` and
  `_workspaces/` are ignored.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel

from shared.archives import ARCHIVE_READ_ERRORS
from shared.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, PermanentError
from shared.log import LOG_METRIC_DEAD_LETTER, LOG_METRIC_FIELD
from shared.metrics import DEAD_LETTERED
from shared.models import ArchiveWorkspace, Channel, JobRequest, is_safe_id
from shared.services.common import utcnow
from shared.services.jobs import create_channel_job, parse_request

if TYPE_CHECKING:
    from shared.adapters import Adapters
    from shared.settings import Settings

log = logging.getLogger(__name__)

ERRORS_PREFIX = "_errors/"
RESULTS_PREFIX = "_results/"
# Workspace archives that HTTP submissions reference (`codex-cloud submit --dir`): not jobs.
WORKSPACES_PREFIX = "_workspaces/"
IGNORED_PREFIXES = (ERRORS_PREFIX, RESULTS_PREFIX, WORKSPACES_PREFIX)
MANIFEST_NAMES = ("codex-job.json", "codex-job.yaml", "codex-job.yml")
SPEC_SUFFIXES = (".json", ".yaml", ".yml")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")

Kind = Literal["spec", "archive"]


class StorageObject(BaseModel):
    """The fields of a `storage.object.v1.finalized` event that the upload path needs."""

    bucket: str
    name: str
    generation: int
    size: int | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class UploadOutcome:
    status: Literal["created", "duplicate", "ignored", "rejected"]
    job_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    error_object: str | None = None


def result_object_name(object_name: str) -> str:
    return f"uploads/{object_name}.result.json"


def error_object_name(object_name: str) -> str:
    return f"{ERRORS_PREFIX}{object_name}.error.json"


def archive_owner(object_name: str, default: str) -> str | None:
    """The tenant whose jobs may use this uploads-bucket object as a workspace archive.

    `_workspaces/{tenant}/…` and `tenants/{tenant}/…` belong to that tenant, other objects to
    the default tenant, and the service's own report prefixes to nobody."""
    parts = object_name.split("/")
    if object_name.startswith(WORKSPACES_PREFIX):
        return parts[1] if len(parts) >= 3 and parts[1] else None
    if object_name.startswith((ERRORS_PREFIX, RESULTS_PREFIX)):
        return None
    try:
        return tenant_for(object_name, default)
    except InvalidInput:
        return None


def check_workspace_access(request: JobRequest, tenant: str, settings: Settings) -> None:
    """Refuse a workspace archive that is not an upload of the caller's tenant (InvalidInput)."""
    workspace = request.workspace
    if not isinstance(workspace, ArchiveWorkspace):
        return
    uploads = settings.topology.bucket("uploads")
    owner = archive_owner(workspace.object, settings.upload_default_tenant)
    if (workspace.bucket or uploads) != uploads or owner != tenant:
        raise InvalidInput(
            "workspace archive must be an object of this tenant in the uploads bucket",
            errors=[
                {
                    "loc": ["body", "workspace", "object"],
                    "msg": "not an upload of this tenant (tenants/{tenant}/… or "
                    "_workspaces/{tenant}/… in the uploads bucket)",
                }
            ],
        )


def tenant_for(object_name: str, default: str) -> str:
    parts = object_name.split("/")
    if len(parts) >= 3 and parts[0] == "tenants" and parts[1]:
        if not is_safe_id(parts[1]):
            raise InvalidInput(f"tenant prefix {parts[1]!r} is not a valid tenant id")
        return parts[1]
    return default


def kind_of(object_name: str) -> Kind | None:
    lowered = object_name.lower()
    if lowered.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if lowered.endswith(SPEC_SUFFIXES):
        return "spec"
    return None


def parse_spec(data: bytes, name: str) -> dict[str, Any]:
    """A job spec as JSON or YAML (picked by the file name); must be a mapping."""
    try:
        text = data.decode("utf-8")
        loaded = json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{name}: not valid {_format(name)}: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{name}: nested too deeply") from None
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{name}: the job spec must be a mapping of request fields")
    return loaded


def _format(name: str) -> str:
    return "JSON" if name.lower().endswith(".json") else "YAML"


def read_manifest(data: bytes, archive_name: str, max_bytes: int) -> dict[str, Any]:
    """The manifest at the archive's root (`codex-job.json` or `codex-job.yaml`), parsed.

    Only the manifest is read here; the worker extracts the workspace with its own safety
    checks (path traversal, links, size), so nothing is unpacked in this function.
    """
    found: dict[str, bytes] = {}
    lowered = archive_name.lower()
    try:
        if lowered.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    member = _root_name(info.filename)
                    if member in MANIFEST_NAMES and not info.is_dir():
                        if info.file_size > max_bytes:
                            raise PayloadTooLarge(f"{member} is larger than {max_bytes} bytes")
                        found[member] = zf.read(info)
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
                for tinfo in tf:
                    member = _root_name(tinfo.name)
                    if member in MANIFEST_NAMES and tinfo.isfile():
                        if tinfo.size > max_bytes:
                            raise PayloadTooLarge(f"{member} is larger than {max_bytes} bytes")
                        handle = tf.extractfile(tinfo)
                        if handle is not None:
                            found[member] = handle.read()
    except ARCHIVE_READ_ERRORS as exc:
        raise InvalidInput(f"{archive_name}: not a readable archive: {exc}") from None
    if not found:
        raise InvalidInput(
            f"{archive_name}: no manifest at the archive root (expected one of "
            f"{', '.join(MANIFEST_NAMES)})"
        )
    if len(found) > 1:
        raise InvalidInput(f"{archive_name}: more than one manifest ({', '.join(sorted(found))})")
    ((member, raw),) = found.items()
    manifest = parse_spec(raw, member)
    if "workspace" in manifest:
        raise InvalidInput(f"{member}: must not set `workspace` (the archive is the workspace)")
    return manifest


def _root_name(path: str) -> str | None:
    clean = path[2:] if path.startswith("./") else path
    return clean if "/" not in clean.rstrip("/") else None


def handle_upload(adapters: Adapters, obj: StorageObject) -> UploadOutcome:
    uploads_bucket = adapters.storage.bucket_name("uploads")
    if (
        obj.bucket != uploads_bucket
        or obj.name.startswith(IGNORED_PREFIXES)
        or obj.name.endswith("/")
    ):
        return UploadOutcome("ignored", reason="not an upload")
    try:
        return _create_from_upload(adapters, obj)
    except PermanentError as exc:
        reason = exc.code
        error_name = error_object_name(obj.name)
        report = {
            "object": obj.name,
            "bucket": obj.bucket,
            "generation": obj.generation,
            "reason": reason,
            "detail": exc.detail,
            "errors": exc.extra.get("errors", []),
            "reported_at": utcnow().isoformat(),
            "help": "See docs/contracts/uploads.md; the upload was kept unchanged.",
        }
        adapters.storage.put(
            uploads_bucket,
            error_name,
            json.dumps(report, indent=2).encode(),
            content_type="application/json",
        )
        DEAD_LETTERED.labels(source="upload", reason=reason).inc()
        log.warning(
            "upload rejected",
            extra={
                "fields": {
                    LOG_METRIC_FIELD: LOG_METRIC_DEAD_LETTER,
                    "source": "upload",
                    "object": obj.name,
                    "reason": reason,
                    "detail": exc.detail[:500],
                }
            },
        )
        return UploadOutcome("rejected", reason=reason, detail=exc.detail, error_object=error_name)


def _create_from_upload(adapters: Adapters, obj: StorageObject) -> UploadOutcome:
    settings = adapters.settings
    kind = kind_of(obj.name)
    if kind is None:
        raise InvalidInput(
            f"{obj.name}: unsupported file type (use {', '.join(SPEC_SUFFIXES + ARCHIVE_SUFFIXES)})"
        )
    tenant = tenant_for(obj.name, settings.upload_default_tenant)
    limit = settings.upload_manifest_max_bytes if kind == "spec" else settings.upload_max_bytes
    if obj.size is not None and obj.size > limit:
        raise PayloadTooLarge(f"{obj.name} is {obj.size} bytes (limit {limit})")
    try:
        # This version's bytes, not whatever the name holds now.
        data = adapters.storage.get(
            obj.bucket, obj.name, max_bytes=limit, generation=obj.generation
        )
    except NotFound:
        # Replaced (or deleted) before this event was handled: the newer version has an event
        # of its own, and this one has no bytes left to run.
        return UploadOutcome("ignored", reason="superseded by a newer version of the object")
    if kind == "spec":
        body = parse_spec(data, obj.name)
    else:
        body = read_manifest(data, obj.name, settings.upload_manifest_max_bytes)
        body["workspace"] = ArchiveWorkspace(
            object=obj.name, bucket=obj.bucket, generation=obj.generation
        ).model_dump()
    request = parse_request(body)
    source = {
        "bucket": obj.bucket,
        "object": obj.name,
        "generation": obj.generation,
        "kind": kind,
        "result_object": result_object_name(obj.name),
    }
    try:
        outcome = create_channel_job(
            adapters,
            request,
            tenant=tenant,
            channel=Channel.UPLOAD,
            # One job per object version: a re-upload (new generation) is a new job.
            idempotency_key=f"gcs:{obj.bucket}/{obj.name}#{obj.generation}",
            source=source,
        )
    except Conflict as exc:  # pragma: no cover - same generation always has the same bytes
        raise InvalidInput(exc.detail) from None
    status: Literal["created", "duplicate"] = "created" if outcome.created else "duplicate"
    log.info(
        "upload job created",
        extra={"fields": {"job_id": outcome.job.job_id, "object": obj.name, "outcome": status}},
    )
    return UploadOutcome(status, job_id=outcome.job.job_id)
