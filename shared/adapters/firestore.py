"""Firestore client factories (the emulator is picked up from FIRESTORE_EMULATOR_HOST)."""

from __future__ import annotations

from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from shared.settings import Settings


def _options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "project": settings.project_id,
        "database": settings.firestore_database,
    }
    if settings.firestore_emulator_host:
        # The emulator needs no credentials; anonymous ones avoid a metadata-server lookup.
        options["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return options


def make_firestore_client(settings: Settings) -> firestore.Client:
    return firestore.Client(**_options(settings))


def make_async_firestore_client(settings: Settings) -> firestore.AsyncClient:
    """The asyncio client (grpc.aio), for code on an event loop; create it on that loop."""
    return firestore.AsyncClient(**_options(settings))
