"""Helpers shared by the event-driven services: the event-age guard and the effect ledger."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.errors import DependencyUnavailable, RetryableError
from shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_too_old(
    event_time: datetime | None, max_age_s: float, now: datetime | None = None
) -> bool:
    """True for events older than `max_age_s`: redeliveries of something that long stuck are
    dropped (the sweeper recovers any job they would have moved) instead of acting on stale
    state."""
    if event_time is None:
        return False
    if event_time.tzinfo is None:
        event_time = event_time.replace(tzinfo=UTC)
    return ((now or utcnow()) - event_time).total_seconds() > max_age_s


def parse_event_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def stale_cloudevent(attributes: Mapping[str, Any], max_age_s: float) -> bool:
    """event_too_old for a CloudEvent's `time` attribute (missing or unreadable: not stale)."""
    return event_too_old(parse_event_time(attributes.get("time")), max_age_s)


class EffectInProgress(RetryableError):
    """Another delivery holds a fresh claim on this effect; try again later."""

    code = "effect-in-progress"


class EffectLedger:
    """Once-only side effects keyed by `processed_events/{key}`.

    Claim pattern: create the marker as `claimed`, run the effect, then mark it `done`. A crash
    between claim and effect leaves a stale claim that the next delivery takes over after
    `effect_claim_ttl_s`; a crash after the effect but before `done` repeats the effect, so
    every effect is also idempotent on its own (see docs/decisions/0101-*.md).
    """

    def __init__(self, client: firestore.Client, settings: Settings) -> None:
        self._col = client.collection(settings.topology.firestore.dedup_collection)
        self._client = client
        self._ttl = timedelta(seconds=settings.effect_claim_ttl_s)

    def run_once(self, key: str, effect: Callable[[], T]) -> tuple[bool, T | None]:
        """Run `effect` unless it is already done; returns (ran, result)."""
        ref = self._col.document(key)
        claim_id = uuid.uuid4().hex
        now = utcnow()
        try:
            self._call(
                lambda: ref.create({"state": "claimed", "claim_id": claim_id, "claimed_at": now})
            )
        except gexc.Conflict:
            self._take_over(ref, key, claim_id)
        try:
            result = effect()
        except BaseException:
            # Release the claim so the retried delivery can run the effect right away.
            try:
                self._call(ref.delete)
            except DependencyUnavailable:
                log.warning("could not release effect claim", extra={"fields": {"key": key}})
            raise
        self._call(lambda: ref.set({"state": "done", "claim_id": claim_id, "done_at": utcnow()}))
        return True, result

    def run_group(self, key: str, effects: Mapping[str, Callable[[], object]]) -> GroupOutcome:
        """Run several effects of one event under a single marker: one create to claim them
        all and one write to record them, instead of a claim and a `done` per effect.

        The marker lists the effects already done. Effects run independently: when some fail
        retryably, the claim is released with what did succeed and the first failure is
        returned, so the redelivered event reruns only the missing ones."""
        ref = self._col.document(key)
        claim_id = uuid.uuid4().hex
        outcome = GroupOutcome()
        done: set[str] = set()
        try:
            self._call(
                lambda: ref.create(
                    {"state": "claimed", "claim_id": claim_id, "claimed_at": utcnow(), "done": []}
                )
            )
        except gexc.Conflict:
            try:
                done = self._take_over(ref, key, claim_id)
            except _AlreadyDone:
                outcome.skipped.extend(effects)
                return outcome
        for name, effect in effects.items():
            if name in done:
                outcome.skipped.append(name)
                continue
            try:
                effect()
            except RetryableError as exc:
                log.warning(
                    "effect failed; will retry",
                    extra={"fields": {"key": key, "effect": name, "error": exc.detail}},
                )
                outcome.failure = outcome.failure or exc
                continue
            except BaseException:
                self._release(ref, key, claim_id, done)
                raise
            done.add(name)
            outcome.performed.append(name)
        if outcome.failure is not None:
            self._release(ref, key, claim_id, done)
            return outcome
        self._call(
            lambda: ref.set(
                {"state": "done", "claim_id": claim_id, "done": sorted(done), "done_at": utcnow()}
            )
        )
        return outcome

    def _release(
        self, ref: firestore.DocumentReference, key: str, claim_id: str, done: set[str]
    ) -> None:
        """Give a group claim back, keeping what was done, so a retry can start at once."""
        try:
            self._call(
                lambda: ref.set({"state": "released", "claim_id": claim_id, "done": sorted(done)})
            )
        except DependencyUnavailable:
            log.warning("could not release effect claim", extra={"fields": {"key": key}})

    def _take_over(self, ref: firestore.DocumentReference, key: str, claim_id: str) -> set[str]:
        """Claim a marker that exists: not when done or freshly claimed elsewhere; a released
        or abandoned claim is taken over. Returns the effects it records as done."""
        snap = self._call(ref.get)
        data = snap.to_dict() or {}
        if snap.exists and data.get("state") == "done":
            raise _AlreadyDone(key)
        claimed_at = data.get("claimed_at")
        fresh = isinstance(claimed_at, datetime) and utcnow() - claimed_at < self._ttl
        if snap.exists and data.get("state") == "claimed" and fresh:
            raise EffectInProgress(f"effect {key} is being performed elsewhere", retry_after_s=5)
        try:
            if snap.exists:
                option = self._client.write_option(last_update_time=snap.update_time)
                self._call(
                    lambda: ref.update(
                        {"state": "claimed", "claim_id": claim_id, "claimed_at": utcnow()},
                        option=option,
                    )
                )
            else:
                self._call(
                    lambda: ref.create(
                        {"state": "claimed", "claim_id": claim_id, "claimed_at": utcnow()}
                    )
                )
        except (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound):
            raise EffectInProgress(f"effect {key} was taken over elsewhere") from None
        if data.get("state") == "claimed":
            log.warning("took over an abandoned effect claim", extra={"fields": {"key": key}})
        return {str(name) for name in data.get("done") or []}

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
            raise DependencyUnavailable(f"effect ledger unavailable: {exc}") from exc


@dataclass
class GroupOutcome:
    performed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failure: RetryableError | None = None


class _AlreadyDone(Exception):
    """Internal signal: the effect was completed by an earlier delivery."""


def once(ledger: EffectLedger, key: str, effect: Callable[[], T]) -> bool:
    """Run `effect` at most once for `key` (modulo the documented crash window); True if it ran
    in this call."""
    try:
        ran, _ = ledger.run_once(key, effect)
    except _AlreadyDone:
        return False
    return ran
