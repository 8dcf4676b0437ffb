"""API keys: created, listed and revoked here; only their SHA-256 hashes are ever stored.

A key looks like `cck_<key_id>_<secret>`. The document id in the keys collection is the hex
SHA-256 of the whole key, so authenticating a request is one document read and a leaked copy of
the collection does not contain usable keys. `key_id` is the public handle shown in listings,
logs and the revoke command.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import DependencyUnavailable, InvalidInput, NotFound
from shared.models import is_safe_id
from shared.settings import Settings

KEY_PREFIX = "cck_"


class Tier(StrEnum):
    STANDARD = "STANDARD"
    PREMIUM = "PREMIUM"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


DEFAULT_SCOPES = (Scope.READ, Scope.WRITE)


class ApiKey(BaseModel):
    """A stored key (never the secret itself)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key_id: str
    key_hash: str
    name: str
    tenant: str
    tier: Tier = Tier.STANDARD
    scopes: tuple[Scope, ...] = DEFAULT_SCOPES
    created_at: datetime
    revoked_at: datetime | None = None
    # Overrides the tier's requests-per-minute for this key (a negotiated quota).
    rate_limit_per_minute: int | None = Field(default=None, ge=1)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once; not recoverable afterwards
    record: ApiKey


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _collection(client: firestore.Client, settings: Settings) -> Any:
    return client.collection(settings.topology.firestore.keys_collection)


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError) as exc:
        raise DependencyUnavailable(f"key store unavailable: {type(exc).__name__}") from exc


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    scopes: list[Scope] = []
    for value in values:
        value = value.strip().lower()
        if not value:
            continue
        try:
            scope = Scope(value)
        except ValueError:
            raise InvalidInput(
                f"unknown scope {value!r}", errors=[{"loc": ["scopes"], "msg": "unknown scope"}]
            ) from None
        if scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def create_key(
    client: firestore.Client,
    settings: Settings,
    *,
    tenant: str,
    name: str,
    tier: Tier | str = Tier.STANDARD,
    scopes: Iterable[Scope | str] = DEFAULT_SCOPES,
    rate_limit_per_minute: int | None = None,
    now: datetime | None = None,
) -> CreatedKey:
    if not is_safe_id(tenant):
        raise InvalidInput("invalid tenant", errors=[{"loc": ["tenant"], "msg": "invalid id"}])
    if not name or len(name) > 128:
        raise InvalidInput("invalid name", errors=[{"loc": ["name"], "msg": "1..128 chars"}])
    key_id = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        key_id=key_id,
        key_hash=hash_key(plaintext),
        name=name,
        tenant=tenant,
        tier=Tier(str(tier).upper()),
        scopes=parse_scopes(str(s) for s in scopes),
        created_at=now or datetime.now(UTC),
        rate_limit_per_minute=rate_limit_per_minute,
    )
    doc = record.model_dump(mode="python")
    doc["tier"] = record.tier.value
    doc["scopes"] = [s.value for s in record.scopes]
    _guard(lambda: _collection(client, settings).document(record.key_hash).create(doc))
    return CreatedKey(key=plaintext, record=record)


def find_key(client: firestore.Client, settings: Settings, plaintext: str) -> ApiKey | None:
    """The stored key for a presented secret (revoked ones included), or None."""
    if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 256:
        return None
    snap = _guard(lambda: _collection(client, settings).document(hash_key(plaintext)).get())
    if not snap.exists:
        return None
    return ApiKey.model_validate(snap.to_dict())


def find_key_by_id(client: firestore.Client, settings: Settings, key_id: str) -> ApiKey | None:
    """The stored key with this id (revoked ones included), or None."""
    snaps = _guard(lambda: list(_by_id(client, settings, key_id).stream()))
    return ApiKey.model_validate(snaps[0].to_dict()) if snaps else None


def _by_id(client: firestore.Client, settings: Settings, key_id: str) -> Any:
    return (
        _collection(client, settings)
        .where(filter=firestore.FieldFilter("key_id", "==", key_id))
        .limit(1)
    )


def list_keys(
    client: firestore.Client,
    settings: Settings,
    *,
    tenant: str | None = None,
    include_revoked: bool = True,
) -> list[ApiKey]:
    query = _collection(client, settings)
    if tenant is not None:
        query = query.where(filter=firestore.FieldFilter("tenant", "==", tenant))
    keys = [ApiKey.model_validate(s.to_dict()) for s in _guard(lambda: list(query.stream()))]
    if not include_revoked:
        keys = [k for k in keys if k.active]
    return sorted(keys, key=lambda k: k.created_at)


def revoke_key(
    client: firestore.Client, settings: Settings, key_id: str, *, now: datetime | None = None
) -> ApiKey:
    """Mark a key revoked (idempotent: a revoked key keeps its first revocation time)."""
    snaps = _guard(lambda: list(_by_id(client, settings, key_id).stream()))
    if not snaps:
        raise NotFound(f"key {key_id} not found")
    record = ApiKey.model_validate(snaps[0].to_dict())
    if record.revoked_at is not None:
        return record
    revoked_at = now or datetime.now(UTC)
    _guard(lambda: snaps[0].reference.update({"revoked_at": revoked_at}))
    return record.model_copy(update={"revoked_at": revoked_at})
