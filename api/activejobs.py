"""The per-tenant cap on active jobs, without an aggregation query per submission.

Counting a tenant's queued/dispatched/running jobs is an aggregation query whose cost grows
with the tenant's jobs; running it on every `POST /v2/exec` made it the dominant cost of a
submission. The gauge keeps each tenant's last count and the submissions this process accepted
since, and it knows which of its admissions are still being written (`release` is called when a
create is done): a count cannot see those, so they are added to every new figure instead of
vanishing from it. Far from the cap it admits on that estimate and, once it is stale, recounts
in the background, so no submission waits for a count; close enough to the cap that the answer
could change, it counts before admitting. A refusal is always based on a count that started
after the request arrived, so a tenant whose jobs just finished is never refused on old
figures; a burst at the cap shares such counts instead of making one each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from shared.errors import CodexCloudError, RateLimited
from shared.jobstore import JobStore
from shared.models import JobStatus
from shared.settings import Settings

log = logging.getLogger(__name__)

ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING)


class TooManyActiveJobs(RateLimited):
    code = "too-many-active-jobs"
    title = "Too many active jobs"


def count_active_jobs(
    client: firestore.Client, settings: Settings, tenant: str, *, up_to: int
) -> int:
    """Non-terminal jobs of a tenant, counted up to `up_to` (an aggregation query: no
    documents are transferred). Whether the tenant is at the cap is all the answer has to
    say, so a tenant far past it (a lowered cap) costs no more to count than one at it."""
    query = (
        client.collection(settings.topology.firestore.jobs_collection)
        .where(filter=firestore.FieldFilter("tenant", "==", tenant))
        .where(filter=firestore.FieldFilter("status", "in", [s.value for s in ACTIVE_STATUSES]))
        .limit(up_to)
    )
    counter: Any = query.count(alias="n")
    result = JobStore._call(lambda: counter.get())
    return int(result[0][0].value)


@dataclass
class _Estimate:
    counted: int
    at: float
    accepted_since: int = 0

    @property
    def value(self) -> int:
        return self.counted + self.accepted_since


class ActiveJobGauge:
    def __init__(
        self,
        count: Callable[[str], int],
        *,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._max_age_s = max_age_s
        self._clock = clock
        self._estimates: dict[str, _Estimate] = {}
        # Admitted here, create not yet done: invisible to a count that starts now.
        self._in_flight: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._refreshing: set[str] = set()
        self._guard = threading.Lock()
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="active-jobs")

    def _admitted_on_fresh_count(
        self, tenant: str, limit: int, margin: int, arrived: float
    ) -> bool:
        """Decide on a count another caller made while this one waited for the tenant's lock
        (a burst makes one count, not one per request): True to admit, False to count again;
        raises when that count, begun after this request arrived, is already at the cap."""
        if self._max_age_s <= 0:
            return False
        with self._guard:
            estimate = self._estimates.get(tenant)
            if estimate is None or estimate.at < arrived:
                return False
            if estimate.at > arrived and estimate.value >= limit:
                raise self._refusal(estimate.value, limit)
            if estimate.value + 1 > limit - margin:
                return False
            estimate.accepted_since += 1
            self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
            return True

    @staticmethod
    def _refusal(active: int, limit: int) -> TooManyActiveJobs:
        return TooManyActiveJobs(
            f"tenant has {active} active jobs (limit {limit})",
            retry_after_s=5.0,
            extra={"limit": limit, "active_jobs": active},
        )

    def admit(self, tenant: str, limit: int) -> None:
        """Count one more active job for `tenant`, or raise TooManyActiveJobs.

        Soft by design: other processes' submissions show up at the next count, so the cap
        bounds load rather than being an exact quota. May block on a count (see `try_admit`).
        """
        if self.try_admit(tenant, limit):
            return
        margin = max(1, limit // 10)
        arrived = self._clock()
        with self._lock(tenant):
            if self._admitted_on_fresh_count(tenant, limit, margin, arrived):
                return
            now = self._clock()
            with self._guard:
                writing = self._in_flight.get(tenant, 0)
            counted = self._count(tenant)
            with self._guard:
                # Creates under way when the count began may be missing from it: add them.
                active = counted + writing
                if active >= limit:
                    self._estimates[tenant] = _Estimate(counted, now, accepted_since=writing)
                    raise self._refusal(active, limit)
                self._estimates[tenant] = _Estimate(counted, now, accepted_since=writing + 1)
                self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1

    def try_admit(self, tenant: str, limit: int) -> bool:
        """Admit on the estimate when it is far from the cap, without blocking.

        False means nothing was counted and the caller must `admit` (which counts first):
        no estimate yet, or close enough to the cap that the answer could change.
        """
        # Close to the cap a stale figure could let one too many through: count again there.
        margin = max(1, limit // 10)
        with self._guard:
            estimate = self._estimates.get(tenant)
            # A zero max age asks for an exact count on every submission.
            if self._max_age_s <= 0 or estimate is None or estimate.value + 1 > limit - margin:
                return False
            estimate.accepted_since += 1
            self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
            stale = self._clock() - estimate.at >= self._max_age_s
            if not stale or tenant in self._refreshing:
                return True
            # Far from the cap a stale figure is still good enough to admit on: it is
            # refreshed in the background, so no submission waits for the count (which
            # grows with the tenant's jobs).
            self._refreshing.add(tenant)
        self._background.submit(self._refresh, tenant)
        return True

    def release(self, tenant: str) -> None:
        """An admitted submission's create is done (written or failed): from now on a count
        sees it, or there is nothing to see."""
        with self._guard:
            left = self._in_flight.get(tenant, 0) - 1
            if left > 0:
                self._in_flight[tenant] = left
            else:
                self._in_flight.pop(tenant, None)

    def _refresh(self, tenant: str) -> None:
        started = self._clock()
        with self._guard:
            writing = self._in_flight.get(tenant, 0)
        active: int | None = None
        try:
            active = self._count(tenant)
        except CodexCloudError as exc:
            # Submissions go on with the old figure; the next stale one tries again.
            log.warning("active-jobs count failed, keeping the old figure: %s", exc.detail)
        except Exception:  # a background thread: nobody else would see it
            log.exception("active-jobs count failed")
        finally:
            with self._guard:
                self._refreshing.discard(tenant)
                if active is not None:
                    self._estimates[tenant] = _Estimate(active, started, accepted_since=writing)

    def _lock(self, tenant: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tenant, threading.Lock())
