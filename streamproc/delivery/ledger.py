"""The delivery ledger: which delivery ids an API already acknowledged, and when, so replays
and crash redeliveries are skipped within a retention window. Works over any mapping."""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, MutableMapping, Protocol

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """A ledger may also offer seen_many(record_ids) -> set of the seen ones; the engine then
    looks a whole batch up at once (MappingLedger and TableLedger do)."""

    def seen(self, record_id: str) -> bool:
        """True when the id was delivered within the retention window."""

    def mark(self, record_ids: Iterable[str], at: float) -> None:
        """Remember the ids as delivered at `at` (unix seconds)."""


def as_unix_seconds(value: object) -> float | None:
    """A stored ledger value as unix seconds: float/int, or text/bytes holding a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", errors="replace")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class MappingLedger:
    """A Ledger over any MutableMapping[str, float | bytes] (a dict, a faust Table) whose values
    are unix seconds. Entries older than retention_s count as unseen; purge() deletes them."""

    def __init__(self, mapping: MutableMapping[str, float | bytes], retention_s: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be > 0")
        self.mapping = mapping
        self.retention_s = retention_s
        self._clock = clock

    def _fresh(self, value: object, now: float) -> bool:
        at = as_unix_seconds(value)
        return at is not None and now - at < self.retention_s

    def seen(self, record_id: str) -> bool:
        value = self.mapping.get(record_id)
        return value is not None and self._fresh(value, self._clock())

    def seen_many(self, record_ids: Iterable[str]) -> set[str]:
        now = self._clock()
        get = self.mapping.get
        return {i for i in record_ids if (v := get(i)) is not None and self._fresh(v, now)}

    def mark(self, record_ids: Iterable[str], at: float) -> None:
        for record_id in record_ids:
            self.mapping[record_id] = at

    def purge(self, now: float | None = None, *, chunk: int = 1000, max_chunks: int = 100) -> int:
        """Delete expired (or unreadable) entries, at most `chunk` per scan and `max_chunks` scans
        per call, so one call stays bounded; returns how many were deleted. Call it again
        (e.g. from a timer) while it returns chunk * max_chunks."""
        now = self._clock() if now is None else now
        deleted = 0
        for _ in range(max_chunks):
            expired = []
            for key, value in self.mapping.items():
                if not self._fresh(value, now):
                    expired.append(key)
                    if len(expired) >= chunk:
                        break
            for key in expired:
                try:
                    del self.mapping[key]
                except KeyError:
                    pass
            deleted += len(expired)
            if len(expired) < chunk:
                break
        if deleted:
            log.debug("ledger purge deleted %d expired entries", deleted)
        return deleted


class InMemoryLedger(MappingLedger):
    """MappingLedger over a plain dict (tests, single-process tools)."""

    def __init__(self, retention_s: float = 72 * 3600, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__({}, retention_s, clock=clock)

    def __len__(self) -> int:
        return len(self.mapping)
