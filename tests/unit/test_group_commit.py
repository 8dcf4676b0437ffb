"""Group commit: who shares a commit, and what each caller is told when one fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.group_commit import GroupCommitter

pytestmark = pytest.mark.unit


class Unavailable(Exception):
    pass


class Store:
    """A commit function that holds each commit until the test releases it, and records
    the batches it was given; a batch holding a write named "bad" fails as a whole."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.written: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def commit(self, writes: list[str]) -> None:
        self.batches.append(list(writes))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if any(w.startswith("bad") for w in writes):
            raise ValueError("bad write")
        self.written.extend(writes)


def committer(store: Store, max_in_flight: int, **limits: int) -> GroupCommitter[str]:
    return GroupCommitter(
        store.commit,
        size=len,
        shared_failure=lambda exc: isinstance(exc, Unavailable),
        max_in_flight=max_in_flight,
        **limits,
    )


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def arrive_one_by_one(
    gc: GroupCommitter[str], units: Sequence[Sequence[str]]
) -> list[asyncio.Task[None]]:
    """Callers arriving in separate turns of the event loop, as requests do."""
    tasks = []
    for unit in units:
        tasks.append(asyncio.create_task(gc.commit(unit)))
        await _settle()
    return tasks


def test_units_that_arrive_in_the_same_turn_go_out_together() -> None:
    async def scenario() -> Store:
        store = Store()
        gc = committer(store, max_in_flight=4)
        await asyncio.gather(*(gc.commit([f"j{n}"]) for n in range(3)))
        return store

    assert asyncio.run(scenario()).batches == [["j0", "j1", "j2"]]


def test_below_the_concurrency_each_unit_goes_out_at_once_on_its_own() -> None:
    async def scenario() -> Store:
        store = Store()
        store.gate.clear()
        gc = committer(store, max_in_flight=3)
        tasks = await arrive_one_by_one(gc, [[f"j{n}", f"e{n}"] for n in range(3)])
        assert store.batches == [["j0", "e0"], ["j1", "e1"], ["j2", "e2"]]  # none waited
        store.gate.set()
        await asyncio.gather(*tasks)
        return store

    store = asyncio.run(scenario())
    assert sorted(store.written) == ["e0", "e1", "e2", "j0", "j1", "j2"]


def test_units_that_arrive_while_commits_are_busy_share_the_next_one_in_order() -> None:
    async def scenario() -> Store:
        store = Store()
        store.gate.clear()
        gc = committer(store, max_in_flight=1)
        tasks = await arrive_one_by_one(gc, [[f"j{n}", f"e{n}"] for n in range(5)])
        assert store.batches == [["j0", "e0"]]
        store.gate.set()
        await asyncio.gather(*tasks)
        return store

    store = asyncio.run(scenario())
    assert store.batches == [["j0", "e0"], ["j1", "e1", "j2", "e2", "j3", "e3", "j4", "e4"]]


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        # at most 4 writes: two units per batch
        ({"max_writes": 4}, [["a0", "b0"], ["a1", "b1", "a2", "b2"], ["a3", "b3"]]),
        # at most 8 bytes: each write is 2 bytes, so the same split by size
        ({"max_bytes": 8}, [["a0", "b0"], ["a1", "b1", "a2", "b2"], ["a3", "b3"]]),
        # a unit larger than the limit still goes out, alone
        ({"max_bytes": 1}, [["a0", "b0"], ["a1", "b1"], ["a2", "b2"], ["a3", "b3"]]),
    ],
)
def test_a_shared_commit_stays_within_the_write_and_size_limits(
    limits: dict[str, int], expected: list[list[str]]
) -> None:
    async def scenario() -> Store:
        store = Store()
        store.gate.clear()
        gc = committer(store, max_in_flight=1, **limits)
        tasks = await arrive_one_by_one(gc, [[f"a{n}", f"b{n}"] for n in range(4)])
        store.gate.set()
        await asyncio.gather(*tasks)
        return store

    assert asyncio.run(scenario()).batches == expected


def test_one_bad_unit_fails_only_its_own_caller() -> None:
    async def scenario() -> tuple[Store, list[object]]:
        store = Store()
        store.gate.clear()
        gc = committer(store, max_in_flight=1)
        tasks = await arrive_one_by_one(gc, [["j0"], ["j1"], ["bad2"], ["j3"]])
        store.gate.set()
        return store, await asyncio.gather(*tasks, return_exceptions=True)

    store, outcomes = asyncio.run(scenario())
    assert [outcomes[0], outcomes[1], outcomes[3]] == [None, None, None]
    assert isinstance(outcomes[2], ValueError)
    assert sorted(store.written) == ["j0", "j1", "j3"]
    # the shared batch failed whole, then each of its units was tried alone
    assert store.batches == [["j0"], ["j1", "bad2", "j3"], ["j1"], ["bad2"], ["j3"]]


def test_a_failure_every_unit_shares_is_everyones_answer_without_retries() -> None:
    async def scenario() -> tuple[Store, list[object]]:
        store = Store()
        store.gate.clear()
        gc = committer(store, max_in_flight=1)
        tasks = await arrive_one_by_one(gc, [[f"j{n}"] for n in range(3)])
        store.fail_with = Unavailable("down")
        store.gate.set()
        return store, await asyncio.gather(*tasks, return_exceptions=True)

    store, outcomes = asyncio.run(scenario())
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert store.batches == [["j0"], ["j1", "j2"]]


def test_a_caller_that_gives_up_does_not_cancel_the_commit_it_shares() -> None:
    async def scenario() -> tuple[Store, bool]:
        store = Store()
        store.gate.clear()
        gc = committer(store, max_in_flight=1)
        first, leaving, staying = await arrive_one_by_one(gc, [["j0"], ["j1"], ["j2"]])
        leaving.cancel()
        await _settle()
        store.gate.set()
        await asyncio.gather(first, staying)
        return store, leaving.cancelled()

    store, left = asyncio.run(scenario())
    assert left
    assert store.written == ["j0", "j1", "j2"]  # the leaver's writes landed with the others


def test_nothing_to_write_sends_nothing() -> None:
    async def scenario() -> Store:
        store = Store()
        await committer(store, max_in_flight=1).commit([])
        return store

    assert asyncio.run(scenario()).batches == []


def test_the_concurrency_must_allow_one_commit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        committer(Store(), max_in_flight=0)
