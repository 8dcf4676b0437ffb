"""Firestore client factory (the emulator is picked up from FIRESTORE_EMULATOR_HOST)."""

from __future__ import annotations

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from shared.settings import Settings


def make_firestore_client(settings: Settings) -> firestore.Client:
    if settings.firestore_emulator_host:
        # The emulator needs no credentials; anonymous ones avoid a metadata-server lookup.
        return firestore.Client(
            project=settings.project_id,
            database=settings.firestore_database,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        )
    return firestore.Client(project=settings.project_id, database=settings.firestore_database)


def make_async_firestore_client(settings: Settings) -> firestore.AsyncClient:
    """The asyncio client (grpc.aio), for code on an event loop; create it on that loop."""
    if settings.firestore_emulator_host:
        return firestore.AsyncClient(
            project=settings.project_id,
            database=settings.firestore_database,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        )
    return firestore.AsyncClient(project=settings.project_id, database=settings.firestore_database)
