"""Typed view of `topology.yaml`, the single list of topics, subscriptions, buckets and queues.

The local stack provisions from it and terraform reads the same file, so names cannot drift.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

TOPOLOGY_FILE = Path(__file__).with_name("topology.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopicSpec(_Frozen):
    name: str
    retention: str
    schema_file: str | None = Field(default=None, alias="schema")


class SubscriptionSpec(_Frozen):
    name: str
    topic: str
    ack_deadline: int = 60
    retention: str = "7d"
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None


class BucketSpec(_Frozen):
    name: str
    delete_after_days: int
    versioned: bool = False


class QueueSpec(_Frozen):
    name: str
    max_dispatches_per_second: float
    max_concurrent_dispatches: int
    max_attempts: int


class FirestoreSpec(_Frozen):
    jobs_collection: str
    events_subcollection: str
    # `jobs/{id}/<stream>/head`: the next event sequence number, apart from the job document.
    stream_subcollection: str
    keys_collection: str
    dedup_collection: str
    # `workers/{worker_id}/<cancels>/{job_id}`: a worker's cancel mailbox.
    cancels_subcollection: str
    # `<leases>/{job_id}`: the lease of a running job, apart from the job document.
    leases_collection: str


class Topology(_Frozen):
    topics: dict[str, TopicSpec]
    subscriptions: dict[str, SubscriptionSpec]
    buckets: dict[str, BucketSpec]
    queues: dict[str, QueueSpec]
    firestore: FirestoreSpec

    def topic(self, key: str) -> str:
        return self.topics[key].name

    def bucket(self, key: str) -> str:
        return self.buckets[key].name

    def queue(self, key: str) -> str:
        return self.queues[key].name

    def subscription(self, key: str) -> str:
        return self.subscriptions[key].name


@lru_cache(maxsize=8)
def load_topology(prefix: str = "", path: Path = TOPOLOGY_FILE) -> Topology:
    """Parse the topology, adding a per-deployment name prefix to every resource name."""
    raw = yaml.safe_load(path.read_text())
    for section in ("topics", "subscriptions", "buckets", "queues"):
        for spec in raw[section].values():
            spec["name"] = f"{prefix}{spec['name']}"
    return Topology.model_validate(raw)
