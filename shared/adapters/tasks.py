"""Cloud Tasks: HTTP tasks to the worker pool (the emulator over an insecure gRPC channel)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import timestamp_pb2

from shared.errors import DependencyUnavailable
from shared.settings import Settings


class TaskQueue:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def client(self) -> tasks_v2.CloudTasksClient:
        host = self._settings.tasks_emulator_host
        if host:
            channel = grpc.insecure_channel(host)
            return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        return tasks_v2.CloudTasksClient()

    def queue_path(self, queue_key: str) -> str:
        return str(
            self.client.queue_path(
                self._settings.project_id,
                self._settings.tasks_location,
                self._settings.topology.queue(queue_key),
            )
        )

    def enqueue_http(
        self,
        queue_key: str,
        *,
        url: str,
        body: Mapping[str, Any],
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        schedule_time: datetime | None = None,
        audience: str | None = None,
    ) -> str | None:
        """Create an HTTP POST task. A task id already used returns None (deduplicated).

        `audience` is the OIDC token's audience (default: `url`); worker tasks pass
        `settings.worker_oidc_audience`, the one audience the worker accepts."""
        parent = self.queue_path(queue_key)
        http_request: dict[str, Any] = {
            "http_method": tasks_v2.HttpMethod.POST,
            "url": url,
            "headers": {"Content-Type": "application/json", **dict(headers or {})},
            "body": json.dumps(body, default=str).encode(),
        }
        if self._settings.tasks_service_account:
            # Production: Cloud Tasks mints a Google-signed ID token for this service account;
            # the worker checks it against CODEX_CLOUD_WORKER_OIDC_AUDIENCE and
            # CODEX_CLOUD_WORKER_ALLOWED_CALLERS (worker/auth.py), the control function through
            # Cloud Run IAM. The emulator sends none (the local worker checks none).
            http_request["oidc_token"] = {
                "service_account_email": self._settings.tasks_service_account,
                "audience": audience or url,
            }
        task: dict[str, Any] = {"http_request": http_request}
        if task_id:
            task["name"] = f"{parent}/tasks/{task_id}"
        if schedule_time is not None:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(schedule_time)
            task["schedule_time"] = ts
        try:
            created = self.client.create_task(request={"parent": parent, "task": task})
        except gexc.AlreadyExists:
            return None
        except gexc.GoogleAPICallError as exc:
            raise DependencyUnavailable(f"enqueue to {queue_key} failed: {exc}") from exc
        return str(created.name)
