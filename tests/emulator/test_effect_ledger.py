"""The effect ledger's grouped markers against the real Firestore emulator: each effect of an
event runs once across redeliveries, and a retry runs only what failed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters import Adapters
from shared.errors import DependencyUnavailable
from shared.services.common import EffectInProgress, EffectLedger


class Effects:
    """Counting effects; `failing` names those that raise a retryable error this time."""

    def __init__(self, *names: str) -> None:
        self.calls: dict[str, int] = dict.fromkeys(names, 0)
        self.failing: set[str] = set()

    def table(self) -> dict[str, Callable[[], object]]:
        return {name: self._effect(name) for name in self.calls}

    def _effect(self, name: str) -> Callable[[], object]:
        def run() -> None:
            self.calls[name] += 1
            if name in self.failing:
                raise DependencyUnavailable(f"{name} is down")

        return run


@pytest.fixture
def ledger(isolated_adapters: Adapters) -> EffectLedger:
    return EffectLedger(isolated_adapters.firestore, isolated_adapters.settings)


def test_redeliveries_skip_effects_already_done(ledger: EffectLedger) -> None:
    effects = Effects("topic", "bucket")
    first = ledger.run_group("job-1:succeeded:effects", effects.table())
    again = ledger.run_group("job-1:succeeded:effects", effects.table())
    assert first.performed == ["topic", "bucket"]
    assert first.failure is None
    assert again.performed == []
    assert again.skipped == ["topic", "bucket"]
    assert effects.calls == {"topic": 1, "bucket": 1}


def test_a_retry_runs_only_the_effect_that_failed(ledger: EffectLedger) -> None:
    effects = Effects("topic", "webhook", "bucket")
    effects.failing = {"webhook"}
    first = ledger.run_group("job-2:failed:effects", effects.table())
    assert first.performed == ["topic", "bucket"]
    assert isinstance(first.failure, DependencyUnavailable)

    effects.failing = set()
    retry = ledger.run_group("job-2:failed:effects", effects.table())
    assert retry.performed == ["webhook"]
    assert retry.skipped == ["topic", "bucket"]
    assert retry.failure is None
    assert effects.calls == {"topic": 1, "webhook": 2, "bucket": 1}
    assert ledger.run_group("job-2:failed:effects", effects.table()).performed == []


def test_a_fresh_claim_elsewhere_defers_and_an_abandoned_one_is_taken_over(
    ledger: EffectLedger, isolated_adapters: Adapters
) -> None:
    markers = isolated_adapters.firestore.collection(
        isolated_adapters.settings.topology.firestore.dedup_collection
    )
    now = datetime.now(UTC)
    markers.document("job-3:succeeded:effects").create(
        {"state": "claimed", "claim_id": "other", "claimed_at": now, "done": ["topic"]}
    )
    effects = Effects("topic", "bucket")
    with pytest.raises(EffectInProgress):
        ledger.run_group("job-3:succeeded:effects", effects.table())
    assert effects.calls == {"topic": 0, "bucket": 0}

    stale = now - timedelta(seconds=isolated_adapters.settings.effect_claim_ttl_s + 5)
    markers.document("job-3:succeeded:effects").update({"claimed_at": stale})
    taken = ledger.run_group("job-3:succeeded:effects", effects.table())
    assert taken.performed == ["bucket"]  # the crashed holder had done the topic
    assert taken.skipped == ["topic"]
    assert effects.calls == {"topic": 0, "bucket": 1}
