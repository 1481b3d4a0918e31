"""What one Deliverer.deliver() call reports (the ids delivered or skipped, and the dead records
with what the dead-letter topic needs), and the mapping step that can make records dead."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from streamproc.core.errors import DeliveryError, Permanent
from streamproc.core.records import SinkRecord, dead_letter
from streamproc.destinations.request import HttpRequest

log = logging.getLogger(__name__)
RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(slots=True)
class DeadRecord:
    record: SinkRecord
    error: DeliveryError
    reason: str  # machine-readable: http_400, retries_exhausted, mapping_failed, a mapping's own
    status: int | None  # last HTTP status (None: no answer, or never sent)
    body_excerpt: str
    attempts: int
    first_attempt_at: float | None  # unix seconds
    last_attempt_at: float | None

    def to_dead_letter(self) -> bytes:
        """The record for this destination's dead-letter topic (records.dead_letter)."""
        return dead_letter(
            stage="delivery", reason=self.reason, message=str(self.error), original=None,
            source=self.record.source, destination=self.record.destination,
            record=self.record.to_dict(), status=self.status,
            response_excerpt=self.body_excerpt or None, attempts=self.attempts,
            first_attempt_at=self.first_attempt_at, last_attempt_at=self.last_attempt_at)


@dataclass(slots=True)
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # seen by the ledger, or repeated in the batch
    already: list[SinkRecord] = field(default_factory=list)  # those the ledger had (once each)
    dead: list[DeadRecord] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # destination paused: to be read again later


def map_records(destination: Any, settings: Any, records: list[SinkRecord], name: str,
                ) -> tuple[list[HttpRequest], list[tuple[SinkRecord, DeliveryError]]]:
    """destination.build_requests, record by record if the batch as a whole fails to map (a
    record that still fails is a mapping failure of its own)."""
    try:
        return destination.build_requests(records, settings)
    except Exception:
        log.exception("%s: build_requests failed for a batch; mapping one by one", name)
    requests: list[HttpRequest] = []
    failures: list[tuple[SinkRecord, DeliveryError]] = []
    for record in records:
        try:
            one, bad = destination.build_requests([record], settings)
        except Exception as exc:
            one, bad = [], [(record, reasoned(Permanent(f"mapping failed: {exc!r}"),
                                              "mapping_failed"))]
        requests += one
        failures += bad
    return requests, failures


def reasoned(error: DeliveryError, reason: str) -> DeliveryError:
    error.reason = reason  # type: ignore[attr-defined]
    return error
