"""A CloudEvent function that appends what it receives to a JSON-lines file.

The local stack binds it to every trigger path when asked (`StackOptions(probe=True)`), so
tests can check the exact event type, attributes and data a production function would get.
"""

from __future__ import annotations

import base64
import json
import os
import threading

import functions_framework
from cloudevents.http.event import CloudEvent

_lock = threading.Lock()


@functions_framework.cloud_event
def probe(event: CloudEvent) -> None:
    data = event.get_data()
    payload: dict[str, object]
    if isinstance(data, bytes | bytearray):
        payload = {"data_base64": base64.b64encode(bytes(data)).decode()}
    else:
        payload = {"data": data}
    record = {"attributes": dict(event.get_attributes()), **payload}
    with _lock, open(os.environ["CODEX_CLOUD_PROBE_LOG"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record, default=str) + "\n")
