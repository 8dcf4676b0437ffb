"""Uploads bucket finalize → job (CloudEvent `google.cloud.storage.object.v1.finalized`).

Bad uploads get an error report beside them and are acknowledged; transient errors raise.
"""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http.event import CloudEvent
from pydantic import ValidationError

from shared.services.common import stale_cloudevent
from shared.services.runtime import invocation, process_adapters
from shared.services.uploads import StorageObject, handle_upload

log = logging.getLogger("functions.on_upload")


@functions_framework.cloud_event
def on_upload(event: CloudEvent) -> None:
    adapters = process_adapters()
    attributes = event.get_attributes()
    with invocation(attributes):
        if stale_cloudevent(attributes, adapters.settings.event_max_age_s):
            log.warning("dropping a stale upload event")
            return
        try:
            obj = StorageObject.model_validate(event.get_data())
        except ValidationError as exc:
            log.error("ignoring a malformed object event", extra={"fields": {"error": str(exc)}})
            return
        with invocation({}, object=obj.name):
            outcome = handle_upload(adapters, obj)
            log.info(
                "upload outcome",
                extra={
                    "fields": {
                        "outcome": outcome.status,
                        "job_id": outcome.job_id,
                        "reason": outcome.reason,
                    }
                },
            )
