"""The active-jobs cap: counted rarely while far from the cap, exactly near it."""

from __future__ import annotations

import threading
import time

import pytest

from api.activejobs import ActiveJobGauge, TooManyActiveJobs
from shared.errors import DependencyUnavailable


class Tenant:
    def __init__(self, active: int) -> None:
        self.active = active
        self.counts = 0
        self.now = 0.0

    def count(self, tenant: str) -> int:
        self.counts += 1
        return self.active

    def gauge(self, max_age_s: float = 1.0) -> ActiveJobGauge:
        return ActiveJobGauge(self.count, max_age_s=max_age_s, clock=lambda: self.now)


def test_far_from_the_cap_one_count_serves_many_submissions() -> None:
    t = Tenant(active=0)
    gauge = t.gauge()
    for _ in range(50):
        gauge.admit("acme", limit=100)
    assert t.counts == 1
    t.now = 1.5  # the figure is stale now
    gauge.admit("acme", limit=100)
    assert t.counts == 2


def test_near_the_cap_every_submission_counts_and_the_cap_holds() -> None:
    t = Tenant(active=0)
    gauge = t.gauge()
    for _ in range(10):
        gauge.admit("acme", limit=10)
        t.active += 1  # each admitted submission becomes an active job
        gauge.release("acme")  # its create is done: counts see it from now on
    with pytest.raises(TooManyActiveJobs) as refused:
        gauge.admit("acme", limit=10)
    assert refused.value.extra == {"limit": 10, "active_jobs": 10}
    assert t.counts > 2  # counted afresh as the estimate approached the cap


def test_a_refusal_is_lifted_as_soon_as_jobs_finish() -> None:
    t = Tenant(active=4)
    gauge = t.gauge(max_age_s=60)
    with pytest.raises(TooManyActiveJobs):
        gauge.admit("acme", limit=4)
    t.active = 3  # one job finished; the stale figure must not keep refusing
    gauge.admit("acme", limit=4)


def test_tenants_are_counted_separately() -> None:
    t = Tenant(active=0)
    gauge = t.gauge()
    gauge.admit("a", limit=100)
    gauge.admit("b", limit=100)
    gauge.admit("a", limit=100)
    assert t.counts == 2


def test_zero_max_age_counts_every_time() -> None:
    t = Tenant(active=0)
    gauge = t.gauge(max_age_s=0)
    for _ in range(3):
        gauge.admit("acme", limit=100)
    assert t.counts == 3


def test_a_stale_figure_is_refreshed_in_the_background_and_nobody_waits() -> None:
    t = Tenant(active=0)
    gauge = t.gauge(max_age_s=1.0)
    gauge.admit("acme", limit=100)
    t.now = 2.0  # stale
    counting = threading.Event()
    release = threading.Event()
    counted = threading.Event()

    def slow_count(tenant: str) -> int:
        counting.set()
        assert release.wait(5)
        counted.set()
        return t.count(tenant)

    gauge._count = slow_count
    gauge.admit("acme", limit=100)  # returns at once; the count runs in the background
    assert counting.wait(5)
    gauge.admit("acme", limit=100)  # still admitted on the old figure, no second count
    release.set()
    assert counted.wait(5)
    deadline = time.monotonic() + 5
    while t.counts < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.counts == 2  # the first count and one refresh, not one per caller
    t.now = 2.5
    gauge.admit("acme", limit=100)
    assert t.counts == 2  # the refreshed figure is fresh again


def test_a_failed_refresh_keeps_admitting_on_the_old_figure() -> None:
    t = Tenant(active=0)
    gauge = t.gauge(max_age_s=1.0)
    gauge.admit("acme", limit=100)
    t.now = 2.0
    failed = threading.Event()

    def down(tenant: str) -> int:
        failed.set()
        raise DependencyUnavailable("firestore down")

    gauge._count = down
    gauge.admit("acme", limit=100)  # admitted on the old figure; the failure is logged
    assert failed.wait(5)
    gauge._count = t.count
    deadline = time.monotonic() + 5
    while t.counts < 2 and time.monotonic() < deadline:  # a later caller refreshes
        gauge.admit("acme", limit=100)
        time.sleep(0.01)
    assert t.counts == 2


def _burst(gauge: ActiveJobGauge, *, limit: int, n: int = 8) -> list[BaseException]:
    """`n` submissions of one tenant at once; what each one raised (admitted ones raise
    nothing)."""
    raised: list[BaseException] = []

    def submit() -> None:
        try:
            gauge.admit("acme", limit=limit)
        except BaseException as exc:
            raised.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    return raised


def test_a_burst_from_a_tenant_not_yet_counted_makes_one_count() -> None:
    t = Tenant(active=3)
    started = threading.Event()

    def slow_count(tenant: str) -> int:
        started.set()
        time.sleep(0.2)  # the rest of the burst queues behind this count
        return t.count(tenant)

    gauge = ActiveJobGauge(slow_count, max_age_s=5.0, clock=lambda: t.now)
    assert _burst(gauge, limit=100) == []
    assert started.is_set()
    assert t.counts == 1


def test_a_burst_at_the_cap_is_refused_on_shared_counts() -> None:
    """Requests queued behind a count that began after they arrived are refused on it: a
    tenant retrying at its cap costs a count or two per burst, not one per request."""
    t = Tenant(active=10)

    def slow_count(tenant: str) -> int:
        time.sleep(0.5)  # the rest of the burst queues behind this count
        return t.count(tenant)

    refused = _burst(ActiveJobGauge(slow_count, max_age_s=5.0), limit=10)
    assert len(refused) == 8
    assert all(isinstance(exc, TooManyActiveJobs) for exc in refused)
    assert all(getattr(exc, "extra", None) == {"limit": 10, "active_jobs": 10} for exc in refused)
    # The first count may have begun before the last arrivals; they share a second one.
    assert t.counts <= 2


def test_admissions_still_being_written_are_not_lost_by_a_recount() -> None:
    # A burst whose creates have not landed yet: every count still reads zero.
    t = Tenant(active=0)
    gauge = t.gauge(max_age_s=0.5)

    def admit_until_refused() -> int:
        for admitted in range(50):
            try:
                gauge.admit("acme", limit=10)
            except TooManyActiveJobs:
                return admitted
            t.now += 1.0  # every figure goes stale: recounts replace the estimate
        return 50

    assert admit_until_refused() == 10
    assert t.counts > 1
    # The creates are done (one failed): counts see the nine that landed.
    t.active = 9
    for _ in range(10):
        gauge.release("acme")
    gauge.admit("acme", limit=10)
    with pytest.raises(TooManyActiveJobs):
        gauge.admit("acme", limit=10)
