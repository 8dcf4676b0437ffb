"""A Server-Sent Events decoder (the WHATWG rules the API's streams need)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEMessage:
    data: str
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


class SSEDecoder:
    """Feed lines (without their line terminator); complete messages come back.

    `last_event_id` survives across messages as the spec says, so a reconnect can resume.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SSEMessage | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keepalive)
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEMessage | None:
        if self._id is not None:
            self.last_event_id = self._id
        data, event, ident = self._data, self._event, self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        return SSEMessage("\n".join(data), event or "message", ident, self.retry_ms)

    def feed_all(self, lines: Iterator[str] | list[str]) -> Iterator[SSEMessage]:
        for line in lines:
            message = self.feed(line.rstrip("\r"))
            if message is not None:
                yield message
