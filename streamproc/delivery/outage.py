"""A destination paused on transient failures (an outage): since when, the last error, when the
next probe is due (backoff capped at <DEST>_BACKOFF_MAX_S), and the retry budget
(<DEST>_RETRY_BUDGET_S) after which a record that still fails is dead-lettered."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from streamproc.core.logs import clip

log = logging.getLogger(__name__)
MAX_TRACKED = 100_000  # records remembered with their first transient failure
MIN_PROBE_S = 1.0
MIN_HOLD_S = 0.05


class Held(Exception):
    """Raised by a delivery agent's batch whose destination is paused: the runtime holds the
    batch (runtime.feeds.Batch) and reads it again from the checkpoint after hold_s."""

    def __init__(self, destination: str, hold_s: float) -> None:
        super().__init__(f"destination {destination} paused; next probe in {hold_s:.1f}s")
        self.hold_s = max(MIN_HOLD_S, hold_s)


class Outage:
    """The transient-failure state of one destination (see the module).

    A record's budget runs from the earlier of its own first transient failure and the first
    transient failure of the destination's current failing streak (a streak ends at any answer
    that is not transient: a 2xx or a permanent rejection). Both live in this worker's memory:
    after a restart the records are read again from the last committed offset and the budget
    starts again at their next failure, so a restart can only make a record wait longer, never
    lose it."""

    def __init__(self, name: str, delivery: Any, metrics: Any, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.name, self.metrics, self._clock, self._wall = name, metrics, clock, wall
        self.budget_s = delivery.retry_budget_s
        self.probe_initial_s = max(MIN_PROBE_S, delivery.backoff_initial_s)
        self.probe_max_s = max(self.probe_initial_s, delivery.backoff_max_s)
        self.since: float | None = None  # clock time the outage began (paused), else None
        self.since_wall: float | None = None
        self.last_error, self.last_status = "", None  # type: tuple[str, int | None]
        self.probes = 0  # failed probes since the pause
        self.next_probe_at = 0.0
        self._streak: float | None = None  # first transient failure since the last answer
        self._first: dict[str, float] = {}  # record id -> its first transient failure
        metrics.destination_paused.labels(name).set(0)
        metrics.destination_paused_since.labels(name).set(0)

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, record_ids: Iterable[str], error: Any, status: int | None) -> None:
        """Records failed transiently (after the call's own retries, or a probe)."""
        now = self._clock()
        if self._streak is None:
            self._streak = now
        for record_id in record_ids:
            self._first.setdefault(record_id, now)
        while len(self._first) > MAX_TRACKED:
            del self._first[next(iter(self._first))]
        self.last_error, self.last_status = clip(str(error), 300), status

    def answered(self, record_ids: Iterable[str]) -> None:
        """The API answered these records for good (delivered or rejected): the streak ends,
        and a paused destination resumes."""
        self._streak = None
        for record_id in record_ids:
            self._first.pop(record_id, None)
        if self.since is None:
            return
        log.info("destination %s resumed: the API answered again after %.0fs paused (%d failed "
                 "probe(s))", self.name, self._clock() - self.since, self.probes,
                 extra={"destination": self.name})
        self.since = self.since_wall = None
        self.probes = 0
        self.metrics.destination_paused.labels(self.name).set(0)
        self.metrics.destination_paused_since.labels(self.name).set(0)

    def forget(self, record_ids: Iterable[str]) -> None:
        """Records dead-lettered: no longer tracked."""
        for record_id in record_ids:
            self._first.pop(record_id, None)

    def spent(self, record_id: str | None = None) -> bool:
        """Whether the budget of `record_id` (or of the outage, with None) is spent."""
        starts = [t for t in (self._first.get(record_id) if record_id else None, self._streak,
                              self.since) if t is not None]
        return bool(starts) and self._clock() - min(starts) >= self.budget_s

    def probe_due(self) -> bool:
        return self._clock() >= self.next_probe_at

    def wait_s(self) -> float:
        """Seconds until the next probe."""
        return max(0.0, self.next_probe_at - self._clock())

    def pause(self, waiting: int) -> None:
        """Still failing: paused (one WARNING when it starts), the next probe scheduled."""
        now = self._clock()
        if self.since is None:
            self.since = self._streak if self._streak is not None else now
            self.since_wall = self._wall() - (now - self.since)
            self.probes = 0
            self.metrics.destination_paused.labels(self.name).set(1)
            self.metrics.destination_paused_since.labels(self.name).set(self.since_wall)
            log.warning(
                "destination %s PAUSED: %s (status %s). Its %d record(s) in flight and the rest "
                "of its sink are held, not dead-lettered; probing with backoff up to %gs. Records "
                "still failing %gs after their first failure are dead-lettered.", self.name,
                self.last_error, self.last_status, waiting, self.probe_max_s, self.budget_s,
                extra={"destination": self.name, "status": self.last_status})
        else:
            self.probes += 1
        delay = min(self.probe_max_s, self.probe_initial_s * 2 ** min(self.probes, 30))
        self.next_probe_at = now + delay

    def describe(self) -> dict[str, Any]:
        """For the status page."""
        return {"paused": self.active, "paused_since": self.since_wall,
                "last_error": self.last_error or None, "last_status": self.last_status,
                "failed_probes": self.probes,
                "next_probe_in_s": round(self.wait_s(), 1) if self.active else None}
