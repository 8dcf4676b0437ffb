"""Direct protobuf encoding of document creates: byte-for-byte what the client library sends."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from shared.adapters.firestore_writes import add_create, create_write

PATH = "projects/p/databases/(default)/documents/jobs/j1"
UTC = datetime.UTC


@pytest.mark.parametrize(
    "fields",
    [
        {"s": "text", "i": 7, "neg": -3, "f": 1.25, "t": True, "n": None},
        {"at": datetime.datetime(2026, 12, 1, 3, 4, 5, 678901, tzinfo=UTC)},
        {"naive": datetime.datetime(2020, 1, 1, 12, 0)},  # read as UTC, as the library does
        {"west": datetime.datetime(1960, 5, 5, 1, 1, 1, 5, tzinfo=datetime.timezone.max)},
        {"map": {"list": [1, "x", {"deep": False}], "empty": {}}, "empty_list": [], "b": b"\0"},
        {"z": 1, "a": {"y": 2, "b": 3}, "m": "unsorted keys"},
        {"tuple": (1, 2)},
        {},
    ],
)
def test_a_create_write_matches_the_library(fields: dict[str, Any]) -> None:
    ours = create_write(PATH, fields)._pb
    theirs = _helpers.pbs_for_create(PATH, fields)[0]._pb
    assert ours == theirs
    assert ours.SerializeToString() == theirs.SerializeToString()  # the same bytes on the wire


def _batch() -> Any:
    client = firestore.Client(project="p", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return client, client.batch()


def test_add_create_puts_the_same_write_on_the_batch() -> None:
    client, ours = _batch()
    _, theirs = _batch()
    ref = client.document("jobs/j1")
    fields = {"status": "queued", "at": datetime.datetime.now(UTC), "source": {"key_id": "k"}}

    add_create(ours, ref, fields)
    theirs.create(ref, fields)

    assert [w._pb for w in ours._write_pbs] == [w._pb for w in theirs._write_pbs]
    assert ref in ours  # the batch knows the document, as after batch.create


class _NoOffset(datetime.tzinfo):
    def utcoffset(self, _dt: datetime.datetime | None) -> None:
        return None

    def dst(self, _dt: datetime.datetime | None) -> None:
        return None

    def tzname(self, _dt: datetime.datetime | None) -> str:
        return "nowhere"


@pytest.mark.parametrize(
    "value",
    [
        firestore.SERVER_TIMESTAMP,
        {"at": firestore.SERVER_TIMESTAMP},
        {1, 2},
        datetime.datetime(2026, 1, 1, tzinfo=_NoOffset()),
    ],
)
def test_values_only_the_library_knows_take_its_path(value: Any) -> None:
    client, ours = _batch()
    _, theirs = _batch()
    ref = client.document("jobs/j1")

    add_create(ours, ref, {"v": value, "s": "x"})
    theirs.create(ref, {"v": value, "s": "x"})

    assert [w._pb for w in ours._write_pbs] == [w._pb for w in theirs._write_pbs]


@pytest.mark.parametrize("fields", [{"": 1}, {"m": {"": 1}}, {"m": {1: "x"}}])
def test_field_names_the_library_refuses_are_refused_as_before(fields: dict[Any, Any]) -> None:
    client, batch = _batch()
    try:
        _helpers.pbs_for_create(PATH, fields)
    except ValueError as exc:
        expected = str(exc)
    else:
        pytest.fail("the library accepted the field names")
    with pytest.raises(ValueError, match=re.escape(expected)):
        add_create(batch, client.document("jobs/j1"), fields)
