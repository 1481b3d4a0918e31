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
            if record.id in seen and record.id not in ids:
                ids.add(record.id)
                report.already.append(record)  # a `seen` outcome: delivered before
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


HELD_KEPT = 10_000  # held records whose attempts are carried to their next call, at most
# held record id -> (attempts, first attempt time, when it was held)
HeldTries = dict[str, tuple[int, float | None, float]]


def resume(progress: dict[str, Progress], held: HeldTries, now: float,
           max_age: float) -> None:
    """Records held by an earlier call (an outage or auth pause) go on with its attempt count
    and first attempt time: their attempt numbers and dead letters count every HTTP attempt,
    not those of the last call. Only the count toward max_attempts restarts (per call). An
    entry older than `max_age` (longer than a hold lasts: the record was read elsewhere
    meanwhile, a later replay of its id is a new delivery) starts again at 1."""
    if not held:  # the usual case: nothing was held
        return
    for record_id, p in progress.items():
        earlier = held.pop(record_id, None)
        if earlier is not None and now - earlier[2] <= max_age:
            p.attempts, p.first_at = earlier[0], earlier[1]


def keep(report: Any, progress: dict[str, Progress], held: HeldTries, now: float,
         max_age: float) -> None:
    """Remember the attempts of the records a call held (see resume); bounded: entries older
    than `max_age` go first."""
    if len(held) > HELD_KEPT:
        for record_id in [i for i, e in held.items() if now - e[2] > max_age]:
            del held[record_id]
        if len(held) > HELD_KEPT:
            held.clear()
    for record_id in report.held:
        p = progress.get(record_id)
        if p is not None and p.attempts:
            held[record_id] = (p.attempts, p.first_at, now)


def order_keys(request: Any, progress: dict[str, Progress]) -> set[str]:
    """Keys that order a request: its records' keys and their identities in the body
    (record_keys, e.g. the email), so two requests for one contact never overlap."""
    keys: set[str] = set()
    for n, record_id in enumerate(request.record_ids):
        if (p := progress.get(record_id)) is not None:
            body_key = request.record_keys[n] if n < len(request.record_keys) else ""
            p.order_keys = {p.record.key, str(body_key).strip().lower()} - {""}
            keys |= p.order_keys
    return keys
