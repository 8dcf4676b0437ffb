"""A local stand-in for Eventarc: turns what the emulators emit into the CloudEvents that
production delivers to Cloud Run functions, and forwards them.

- Pub/Sub messages → `google.cloud.pubsub.topic.v1.messagePublished` (JSON data), pulled from
  the trigger's subscription (devstack/eventarc_pull.py says why not pushed) or pushed to
  `/pubsub/{trigger}`.
- fake-gcs-server object notifications (via Pub/Sub, likewise) →
  `google.cloud.storage.object.v1.finalized` (the object resource as JSON data).
- Firestore emulator trigger posts (base64 text of a protobuf, doubled `projects/` in the
  source) → `google.cloud.firestore.document.v1.written` with the raw protobuf body.

The function's status code is passed back, so a failing function makes Pub/Sub redeliver
exactly as it would in production. Run as `python -m devstack.eventarc CONFIG.json PORT`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devstack.eventarc_pull import Deliver, Pullers
from devstack.forward import Forwarder, ForwardError

log = logging.getLogger("devstack.eventarc")

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED_TYPE = "google.cloud.storage.object.v1.finalized"
FIRESTORE_WRITTEN_TYPE = "google.cloud.firestore.document.v1.written"


@dataclass(frozen=True)
class Trigger:
    kind: str  # pubsub | storage | firestore
    url: str
    topic: str | None = None
    bucket: str | None = None
    # A trigger with a subscription pulls its messages; without one they are pushed to it.
    subscription: str | None = None


def pubsub_cloudevent(
    project: str, topic: str, envelope: dict[str, Any]
) -> tuple[dict[str, str], bytes]:
    message = dict(envelope.get("message") or {})
    message_id = str(message.get("messageId") or message.get("message_id") or "")
    publish_time = str(message.get("publishTime") or message.get("publish_time") or "")
    # Eventarc sends both spellings of the message fields; functions may read either.
    message.setdefault("messageId", message_id)
    message.setdefault("message_id", message_id)
    message.setdefault("publishTime", publish_time)
    message.setdefault("publish_time", publish_time)
    data = {"message": message, "subscription": envelope.get("subscription", "")}
    headers = {
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_TYPE,
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "ce-id": message_id,
        "ce-time": publish_time,
        "content-type": "application/json",
    }
    return headers, json.dumps(data).encode()


def storage_cloudevent(envelope: dict[str, Any]) -> tuple[dict[str, str], bytes] | None:
    """None for notifications that are not object finalizations."""
    message = envelope.get("message") or {}
    attributes = message.get("attributes") or {}
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        return None
    obj = json.loads(base64.b64decode(message.get("data") or b"e30="))
    bucket = obj.get("bucket") or attributes.get("bucketId", "")
    name = obj.get("name") or attributes.get("objectId", "")
    generation = str(obj.get("generation") or attributes.get("objectGeneration", ""))
    # Fields the production payload always has but fake-gcs-server omits.
    obj.setdefault("kind", "storage#object")
    obj.setdefault("metageneration", "1")
    obj.setdefault("id", f"{bucket}/{name}/{generation}")
    obj.setdefault("selfLink", f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{name}")
    obj["generation"] = generation
    headers = {
        "ce-specversion": "1.0",
        "ce-type": STORAGE_FINALIZED_TYPE,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}",
        "ce-id": str(message.get("messageId") or message.get("message_id") or obj["id"]),
        "ce-time": str(attributes.get("eventTime") or obj.get("updated") or ""),
        "ce-bucket": bucket,
        "content-type": "application/json",
    }
    return headers, json.dumps(obj).encode()


def firestore_cloudevent(
    incoming_headers: dict[str, str], body: bytes
) -> tuple[dict[str, str], bytes]:
    headers = {k: v for k, v in incoming_headers.items() if k.startswith("ce-")}
    source = headers.get("ce-source", "")
    # The emulator writes "projects/projects/P"; production says "projects/P".
    headers["ce-source"] = source.replace("/projects/projects/", "/projects/")
    headers["content-type"] = "application/protobuf"
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = body  # already binary (a fixed emulator) — pass through unchanged
    return headers, raw


class Router:
    def __init__(self, project: str, triggers: dict[str, Trigger]) -> None:
        self.project = project
        self.triggers = triggers
        self.client = Forwarder(timeout_s=600.0, connect_timeout_s=5.0)

    async def _post(
        self, trigger: Trigger, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """The function's answer; 503 when it cannot be reached (the event is retried)."""
        try:
            return await self.client.post(trigger.url, headers, body)
        except ForwardError as exc:
            log.warning("function unreachable: %s", exc)
            return 503, b""

    async def deliver(self, trigger: Trigger, envelope: dict[str, Any]) -> tuple[int, bytes]:
        """A Pub/Sub message (as a push envelope) → the trigger's function: its answer."""
        if trigger.kind == "storage":
            event = storage_cloudevent(envelope)
            if event is None or (trigger.bucket and event[0]["ce-bucket"] != trigger.bucket):
                return 204, b""  # not for this trigger: ack and drop
            headers, body = event
        else:
            headers, body = pubsub_cloudevent(self.project, trigger.topic or "", envelope)
        return await self._post(trigger, headers, body)

    async def pushed(self, request: Request) -> Response:
        trigger = self.triggers[request.path_params["trigger"]]
        status, content = await self.deliver(trigger, json.loads(await request.body()))
        return Response(content=content, status_code=status)

    async def deliver_pulled(self, trigger: Trigger, envelope: dict[str, Any]) -> int:
        return (await self.deliver(trigger, envelope))[0]

    def pull_deliveries(self) -> dict[str, Deliver]:
        """Subscription → how a message pulled from it is delivered (its status code)."""
        return {
            t.subscription: functools.partial(self.deliver_pulled, t)
            for t in self.triggers.values()
            if t.subscription
        }

    async def firestore(self, request: Request) -> Response:
        trigger = self.triggers.get(request.path_params["trigger"])
        if trigger is None:
            return Response(status_code=404)
        headers, body = firestore_cloudevent(dict(request.headers), await request.body())
        status, content = await self._post(trigger, headers, body)
        return Response(content=content, status_code=status)

    async def health(self, request: Request) -> Response:
        return Response("ok")

    def app(self, pubsub_host: str | None = None) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            pullers = Pullers(pubsub_host) if pubsub_host else None
            if pullers is not None:
                pullers.start(self.pull_deliveries())
            try:
                yield
            finally:
                if pullers is not None:
                    await pullers.stop()
                await self.client.aclose()

        return Starlette(
            lifespan=lifespan,
            routes=[
                Route("/healthz", self.health),
                Route("/pubsub/{trigger}", self.pushed, methods=["POST"]),
                Route("/storage/{trigger}", self.pushed, methods=["POST"]),
                Route(
                    "/functions/projects/{project}/triggers/{trigger}",
                    self.firestore,
                    methods=["POST"],
                ),
            ],
        )


def load_router(config_path: Path) -> Router:
    config = json.loads(config_path.read_text())
    triggers = {tid: Trigger(**spec) for tid, spec in config["triggers"].items()}
    return Router(config["project"], triggers)


def main() -> None:
    import uvicorn

    from shared.log import configure_logging

    configure_logging()
    router = load_router(Path(sys.argv[1]))
    app = router.app(os.environ.get("PUBSUB_EMULATOR_HOST"))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")


if __name__ == "__main__":
    main()
