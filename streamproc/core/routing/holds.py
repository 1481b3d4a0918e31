"""Holds, shared by the users and contacts stages: an input whose decision depends on state
that another topic's records update waits in its key's state value (known-users or contacts
table: same key, partition and changelog as the state it waits for) until that state arrives
or its hold time passes."""

from __future__ import annotations

from typing import Any, Iterator

from streamproc.core.routing.drops import (EXPIRED, HELD, OVERFLOW, RELEASED, SOURCE_SEGMENT,
                                           UNKNOWN_USER, Hold)
from streamproc.core.routing.messages import KINDS, Envelope, decode, encode


_HOLDS: dict[tuple[str, str, str], Hold] = {}


def hold_event(source: str, reason: str, outcome: str) -> Hold:
    """The Hold (source, reason, outcome), one shared instance each (they are immutable)."""
    key = (source, reason, outcome)
    h = _HOLDS.get(key)
    if h is None:
        h = _HOLDS[key] = Hold(source, reason, outcome)
    return h


def expired(entry: dict[str, Any], cfg: Any, now: float) -> bool:
    """A held entry past cfg.hold_seconds (held_at is the wall clock when it was held)."""
    return now - float(entry.get("held_at") or 0.0) > cfg.hold_seconds


def held_entry(now: float, kind: str, msg: Envelope, input_id: str,
               source: Any) -> dict[str, Any]:
    """A pending entry: the input as its envelope's JSON text (a string inside the state
    value: reading and writing the state does not parse or rebuild it), its id and origin."""
    return {"held_at": now, "kind": kind, "id": input_id, "event": encode(msg).decode(),
            "source": dict(source or {})}


def held_event(entry: dict[str, Any]) -> Any:
    """The input of a pending entry (also the older form: a Segment event's fields)."""
    event = entry["event"]
    if isinstance(event, str):
        return decode(event.encode())
    return KINDS[entry.get("kind") or "segment"](**event)


def already_held(pending: list[dict[str, Any]], input_id: str) -> bool:
    """True when this input (same source id) is held already: a replayed or redelivered
    copy is not held twice (deciding it twice would give the same delivery ids)."""
    for e in pending:  # a plain loop: a generator costs more than the few entries it reads
        if e.get("id") == input_id:
            return True
    return False


class HoldCounts:
    """Counts of a routing result's `holds` by outcome (a mixin for the result dataclasses)."""

    __slots__ = ()
    holds: list[Any]

    def _n(self, outcome: str) -> int:
        holds = self.holds
        if not holds:
            return 0
        n = 0
        for h in holds:  # a plain loop: read for every routed input that holds anything
            if h.outcome == outcome:
                n += 1
        return n

    held = property(lambda self: self._n(HELD))
    hold_released = property(lambda self: self._n(RELEASED))
    hold_expired = property(lambda self: self._n(EXPIRED))
    hold_overflow = property(lambda self: self._n(OVERFLOW))


def waiting(pending: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(source, waits_for) of every held part in a users or contacts `pending` list."""
    for entry in pending:
        if "waits" in entry:
            for reason in entry["waits"]:
                yield entry["kind"], reason
        else:
            yield SOURCE_SEGMENT, UNKNOWN_USER
