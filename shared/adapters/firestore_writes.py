"""Firestore document writes encoded straight into protobuf messages.

The client library turns every value into a proto-plus wrapper before it reaches protobuf;
for a job document (some twenty fields) that was a quarter of the API's CPU per submission.
`add_create` builds the same `Write` (same fields, same `exists=False` precondition) from the
C protobuf classes and hands it to the batch. Values it does not know (sentinels such as
SERVER_TIMESTAMP, vectors, BSON types, references) go through the library's own path, and a
unit test holds the output equal to the library's for every type it does encode.

It relies on two batch internals (`_add_write_pbs`, `_document_references`) of the pinned
google-cloud-firestore release; the tests fail if either changes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_batch import BaseBatch
from google.cloud.firestore_v1.base_document import BaseDocumentReference
from google.cloud.firestore_v1.types import common, document, write
from google.protobuf import timestamp_pb2

_Value = document.Value.pb()
_MapValue = document.MapValue.pb()
_ArrayValue = document.ArrayValue.pb()
_Document = document.Document.pb()
_Write = write.Write.pb()
_MUST_NOT_EXIST = common.Precondition.pb()(exists=False)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class NotEncodable(TypeError):
    """A value only the client library knows how to write."""


def encode_value(value: Any) -> Any:
    """A Python value → a raw protobuf `Value`, as the library encodes it."""
    # bool before int: bool is an int subtype.
    if isinstance(value, str):
        return _Value(string_value=value)
    if isinstance(value, bool):
        return _Value(boolean_value=value)
    if isinstance(value, int):
        return _Value(integer_value=value)
    if isinstance(value, float):
        return _Value(double_value=value)
    if value is None:
        return _Value(null_value=0)
    if type(value) is datetime.datetime:  # subclasses carry nanoseconds: the library's path
        return _Value(timestamp_value=_timestamp(value))
    if type(value) is bytes:
        return _Value(bytes_value=value)
    if type(value) is dict:
        return _Value(map_value=_MapValue(fields=encode_fields(value)))
    if type(value) in (list, tuple):
        return _Value(array_value=_ArrayValue(values=[encode_value(v) for v in value]))
    raise NotEncodable(type(value).__name__)


def encode_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    # Sorted, as the library does: the serialized message is then the same bytes too.
    out: dict[str, Any] = {}
    for key in sorted(values, key=_field_name):
        out[key] = encode_value(values[key])
    return out


def _field_name(key: object) -> str:
    # The library refuses empty and non-string field names; its path raises the same error.
    if not isinstance(key, str) or not key:
        raise NotEncodable(f"field name {key!r}")
    return key


def _timestamp(value: datetime.datetime) -> Any:
    # Naive datetimes are UTC, as the library reads them; whole microseconds since the epoch.
    if value.tzinfo is not None and value.utcoffset() is None:
        raise NotEncodable("a tzinfo without an offset")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
    micros = (aware - _EPOCH) // datetime.timedelta(microseconds=1)
    seconds, rest = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


def create_write(document_path: str, fields: Mapping[str, Any]) -> write.Write:
    """The `Write` that creates `document_path` with `fields` (fails if it exists)."""
    raw = _Write(
        update=_Document(name=document_path, fields=encode_fields(fields)),
        current_document=_MUST_NOT_EXIST,
    )
    wrapped: write.Write = write.Write.wrap(raw)
    return wrapped


def create_writes(document_path: str, fields: Mapping[str, Any]) -> list[write.Write]:
    """The writes of `batch.create` for `document_path`: encoded directly when every value
    allows it, else by the library (sentinels, transforms)."""
    try:
        return [create_write(document_path, fields)]
    except NotEncodable:
        writes: list[write.Write] = _helpers.pbs_for_create(document_path, dict(fields))
        return writes


def add_create(
    batch: BaseBatch, reference: BaseDocumentReference, fields: Mapping[str, Any]
) -> None:
    """`batch.create(reference, fields)`, with the writes of `create_writes`."""
    path = reference._document_path
    batch._document_references[path] = reference
    batch._add_write_pbs(create_writes(path, fields))
