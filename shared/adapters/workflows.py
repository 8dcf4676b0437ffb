"""Starting Cloud Workflows executions (workflows-emulator locally).

Production: the Workflows Executions REST API through google-auth's AuthorizedSession (no extra
client library). Locally: the emulator's server exposes the same URL shape, but it runs the
whole execution inside the request; we only wait `LOCAL_ACCEPT_WAIT_S` and treat a read
timeout as "started" (its handler keeps running after the client goes away), which mirrors the
production API's immediate return. The wait is short because it holds up the dispatching
function, and the Firestore emulator delivers document triggers one at a time: with a 1 s wait
every job created while a long job was being started waited for it (~0.5 s more to dispatch).
An execution that fails later is the sweeper's to recover, as in production.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import httpx

from shared.errors import DependencyUnavailable, PermanentError
from shared.settings import Settings

log = logging.getLogger(__name__)

EXECUTIONS_API = "https://workflowexecutions.googleapis.com/v1"
LOCAL_ACCEPT_WAIT_S = 0.1
# The name of main's single parameter in workflows/long_job.yaml. The emulator's server binds
# the argument's top-level keys to main's params by name (production passes the whole argument
# as the one parameter), so locally the argument is wrapped under this name.
MAIN_PARAM = "args"


class WorkflowStarter:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _path(self) -> str:
        s = self._settings
        return f"projects/{s.project_id}/locations/{s.region}/workflows/{s.workflow_name}"

    @cached_property
    def _session(self) -> Any:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]

    @cached_property
    def _local_client(self) -> httpx.Client:
        # One client for the process: a new one per start costs a TLS-context set-up each time.
        return httpx.Client(timeout=httpx.Timeout(LOCAL_ACCEPT_WAIT_S, connect=5.0))

    def start(self, argument: Mapping[str, Any]) -> str:
        """Start an execution with `argument` (the workflow's `args`); returns its name."""
        body = {
            "argument": json.dumps(dict(argument), default=str),
            "callLogLevel": "LOG_ERRORS_ONLY",
        }
        if self._settings.workflows_emulator_url:
            wrapped = json.dumps({MAIN_PARAM: dict(argument)}, default=str)
            return self._start_local({**body, "argument": wrapped})
        try:
            resp = self._session.post(
                f"{EXECUTIONS_API}/{self._path()}/executions", json=body, timeout=30
            )
        except Exception as exc:  # requests' errors; kept generic to avoid importing it here
            raise DependencyUnavailable(f"workflows API unreachable: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise DependencyUnavailable(f"workflows API answered {resp.status_code}")
        if resp.status_code >= 400:
            raise PermanentError(f"workflows API refused the execution: {resp.text[:500]}")
        return str(resp.json()["name"])

    def _start_local(self, body: Mapping[str, Any]) -> str:
        url = f"{self._settings.workflows_emulator_url}/v1/{self._path()}/executions"
        name = f"{self._path()}/executions/local-{uuid.uuid4().hex}"
        try:
            resp = self._local_client.post(url, json=body)
        except httpx.ReadTimeout:
            return name  # accepted and still running (see module docstring)
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"workflows emulator unreachable: {exc}") from exc
        # The execution already ran to its end (quickly); a failure there is the workflow's own
        # outcome, recovered by the sweeper, not a failure to start it.
        log.info(
            "workflow execution finished within the accept wait",
            extra={"fields": {"execution": name, "status": resp.status_code}},
        )
        return name
