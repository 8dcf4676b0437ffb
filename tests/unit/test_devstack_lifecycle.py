"""The local stack's lifecycle, without starting any process."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import preflight
from devstack.stack import Stack, StackOptions


def test_entering_a_started_stack_does_not_start_a_second_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[Stack] = []
    monkeypatch.setattr(preflight, "require_runtime", lambda: None)
    monkeypatch.setattr(Stack, "_start", lambda self: starts.append(self))

    with Stack(StackOptions(state_dir=tmp_path)).start() as stack:
        assert starts == [stack]
    assert starts == [stack]

    stack.start()  # stopped stacks can be started again
    assert starts == [stack, stack]
    stack.stop()
