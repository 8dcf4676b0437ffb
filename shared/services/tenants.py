"""Which tenants may submit through the machine channels (Pub/Sub, uploads)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from google.cloud import firestore

from shared.models import is_safe_id

if TYPE_CHECKING:
    from shared.adapters import Adapters

TenantLookup = Callable[[str], bool]


def allow_list(raw: str) -> frozenset[str]:
    return frozenset(t.strip() for t in raw.split(",") if t.strip())


def make_tenant_lookup(adapters: Adapters) -> TenantLookup:
    """A tenant is known when it is on `CODEX_CLOUD_PUBSUB_TENANTS` or owns an API key.

    The API-key check prefers `shared.apikeys.tenant_exists(adapters, tenant)` when that module
    provides it, and otherwise looks for any document in the keys collection whose `tenant`
    field matches and that is not revoked (`revoked_at` null, the shape `shared.apikeys` stores).
    """
    allowed = allow_list(adapters.settings.pubsub_tenants)

    def lookup(tenant: str) -> bool:
        if not is_safe_id(tenant):
            return False
        if tenant in allowed:
            return True
        hook = _apikeys_hook()
        if hook is not None:
            return bool(hook(adapters, tenant))
        keys = adapters.firestore.collection(adapters.settings.topology.firestore.keys_collection)
        query = (
            keys.where(filter=firestore.FieldFilter("tenant", "==", tenant))
            .where(filter=firestore.FieldFilter("revoked_at", "==", None))
            .limit(1)
        )
        return any(True for _ in query.stream())

    return lookup


def _apikeys_hook() -> Callable[..., object] | None:
    try:
        module = importlib.import_module("shared.apikeys")
    except ImportError:
        return None
    hook = getattr(module, "tenant_exists", None)
    return hook if callable(hook) else None
