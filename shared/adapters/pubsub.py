"""Pub/Sub publishing (the emulator is picked up from PUBSUB_EMULATOR_HOST)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc

from shared.errors import DependencyUnavailable, NotFound
from shared.settings import Settings

PUBLISH_TIMEOUT_S = 10.0


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def client(self) -> pubsub_v1.PublisherClient:
        # Batching off: our messages are few and latency-sensitive (results, dead letters).
        return pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0)
        )

    def topic_path(self, topic_key: str) -> str:
        topic = self._settings.topology.topic(topic_key)
        return str(self.client.topic_path(self._settings.project_id, topic))

    def publish(
        self, topic_key: str, data: bytes, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Publish and wait for the server's message id."""
        try:
            future = self.client.publish(self.topic_path(topic_key), data, **dict(attributes or {}))
            return str(future.result(timeout=PUBLISH_TIMEOUT_S))
        except gexc.NotFound as exc:
            raise NotFound(f"topic {topic_key} does not exist") from exc
        except (gexc.GoogleAPICallError, TimeoutError) as exc:
            raise DependencyUnavailable(f"publish to {topic_key} failed: {exc}") from exc

    def publish_json(
        self, topic_key: str, payload: Any, attributes: Mapping[str, str] | None = None
    ) -> str:
        return self.publish(topic_key, json.dumps(payload, default=str).encode(), attributes)
