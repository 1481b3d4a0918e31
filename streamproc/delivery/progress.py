"""The bookkeeping of one Deliverer.deliver() call: each record's progress, what one round of
requests left to do, and the records the ledger already holds (skipped)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from streamproc.core.errors import DeliveryError
from streamproc.core.records import SinkRecord
from streamproc.delivery.report import DeliveryReport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Progress:
    """One record during one deliver() call."""

    record: SinkRecord
    attempts: int = 0  # every send
    counted: int = 0  # sends that count toward max_attempts (auth failures do not)
    first_at: float | None = None
    last_at: float | None = None
    error: DeliveryError | None = None
    status: int | None = None
    body: str = ""
    resolved: bool = False  # delivered or dead
    order_keys: set[str] = field(default_factory=set)  # record key + its identity in the body


@dataclass(slots=True)
class Round:
    """What one pass over the pending records left to do."""

    probe_only: bool  # paused: send one request, defer the rest
    probe_taken: bool = False
    retry: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    blocked_keys: set[str] = field(default_factory=set)
    retry_after: float | None = None
    answered: bool = False  # the API answered a request for good (2xx or a permanent 4xx)


def unseen(records: list[SinkRecord], ledger: Any, report: DeliveryReport,
           name: str) -> list[SinkRecord]:
    """The records to send: each id once, none the ledger holds (None: no ledger lookup, e.g.
    forced); the others are reported skipped."""
    pending, ids = [], set()
    seen = _seen(ledger, [r.id for r in records], name)
    for record in records:
        if record.id in ids or record.id in seen:
            report.skipped.append(record.id)
        else:
            ids.add(record.id)
            pending.append(record)
    return pending


def _seen(ledger: Any, record_ids: list[str], name: str) -> set[str]:
    """The ids the ledger holds (one batch lookup when the ledger offers seen_many)."""
    if ledger is None or not record_ids:
        return set()
    try:
        many = getattr(ledger, "seen_many", None)
        if many is not None:
            return set(many(record_ids))
        return {i for i in record_ids if ledger.seen(i)}
    except Exception:
        log.exception("%s: ledger lookup failed; sending anyway", name)
        return set()
