"""Cloud clients behind small adapters, created lazily from the settings and injectable.

Nothing here talks to the network at import time; the first use of a property creates the
client. Tests and the local stack point them at emulators purely through settings/env vars.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    import redis
    from google.cloud import firestore
    from google.cloud.firestore_v1.async_client import AsyncClient as AsyncFirestore
    from redis.asyncio import Redis as AsyncRedis

    from shared.adapters.pubsub import Publisher
    from shared.adapters.storage import BlobStore
    from shared.adapters.tasks import TaskQueue
    from shared.adapters.workflows import WorkflowStarter
    from shared.jobstore import JobStore


class Adapters:
    """One lazily-built client per cloud service for one process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    @cached_property
    def firestore(self) -> firestore.Client:
        from shared.adapters.firestore import make_firestore_client

        return make_firestore_client(self.settings)

    @cached_property
    def jobs(self) -> JobStore:
        from shared.jobstore import JobStore

        return JobStore(self.firestore, self.settings)

    @cached_property
    def publisher(self) -> Publisher:
        from shared.adapters.pubsub import Publisher

        return Publisher(self.settings)

    @cached_property
    def storage(self) -> BlobStore:
        from shared.adapters.storage import BlobStore

        return BlobStore(self.settings)

    @cached_property
    def tasks(self) -> TaskQueue:
        from shared.adapters.tasks import TaskQueue

        return TaskQueue(self.settings)

    @cached_property
    def redis(self) -> redis.Redis:
        from shared.adapters.redis import make_redis

        return make_redis(self.settings)

    @cached_property
    def redis_async(self) -> AsyncRedis:
        from shared.adapters.redis import make_async_redis

        return make_async_redis(self.settings)

    @cached_property
    def firestore_async(self) -> AsyncFirestore:
        from shared.adapters.firestore import make_async_firestore_client

        return make_async_firestore_client(self.settings)

    @cached_property
    def workflows(self) -> WorkflowStarter:
        from shared.adapters.workflows import WorkflowStarter

        return WorkflowStarter(self.settings)
