"""The worker side of holds (streamproc/core/routing/holds.py): their metrics, an index of the keys
holding inputs on this worker, and the sweeper that sends a sweep message through by-user or
by-contact for every key whose oldest hold passed STREAMPROC_HOLD_SECONDS."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from streamproc import runtime
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.drops import (
    EXPIRED, HELD, HOLD_REASONS, OVERFLOW, RELEASED,
)
from streamproc.core.routing.holds import waiting
from streamproc.core.routing.messages import SweepContact, SweepPending, encode

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

log = logging.getLogger(__name__)

MAX_SWEEPS = 1000  # sweep messages per tick; the rest wait for the next tick
RESWEEP_S = 300.0  # a sweep sent but not processed (a rebalance) is sent again after this
SCAN_CHUNK = 20_000  # stored values read per tick while (re)building the index
TABLES = {"users": "by_user", "contacts": "by_contact"}  # table -> its repartition topic
_PENDING = b'"pending":[{'  # in a stored value that holds inputs (orjson: no spaces)


def count_holds(rt: Runtime, ctx: Any, res: Any) -> None:
    """A routing result's hold events into the hold counters (per batch, like the drops)."""
    m = rt.metrics
    for h in res.holds:
        if h.outcome == HELD:
            ctx.count(m.tracks_held, h.source, h.reason)
        elif h.outcome == RELEASED:
            ctx.count(m.holds_released, h.source, h.reason)
        elif h.outcome in (EXPIRED, OVERFLOW):
            ctx.count(m.holds_dropped, h.outcome, h.source, h.reason)


class HoldIndex:
    """Keys holding inputs on this worker: table -> key -> (not due before, a copy of its
    pending list as written: agents._note_holds). Kept by the
    state agents (note: no work beyond a dict write) and rebuilt by a bounded scan of the active
    stores whenever they change (a restart, a rebalance)."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, tuple[float, list]]] = {t: {} for t in TABLES}
        self.stores: dict[str, set[int]] = {t: set() for t in TABLES}
        self.scans: dict[str, list[tuple[Any, bytes | None]]] = {t: [] for t in TABLES}

    def note(self, table: str, key: str, pending: list[dict[str, Any]],
             not_before: float = 0.0) -> None:
        if pending:
            self.keys[table][key] = (not_before, pending)
        else:
            self.keys[table].pop(key, None)

    def rescan_if_moved(self, table: str, dbs: list[Any] | None) -> None:
        ids = {id(db) for db in dbs or ()}
        if ids != self.stores[table]:  # assignment changed: rebuild from the stores
            self.stores[table] = ids
            self.keys[table].clear()
            self.scans[table] = [(db, None) for db in dbs or ()]

    def scan_step(self, table: str, budget: int = SCAN_CHUNK) -> None:
        """Read up to `budget` stored values of the stores still to scan."""
        scans = self.scans[table]
        while scans and budget > 0:
            db, start = scans.pop()
            last, n = None, 0
            for k, v in db.items(from_key=start) if start else db.items():
                if start is not None and k == start:
                    continue
                last, n = k, n + 1
                if isinstance(v, bytes) and _PENDING in v:
                    try:
                        doc = orjson.loads(v)
                        self.note(table, k.decode(), doc.get("pending") or [])
                    except (orjson.JSONDecodeError, UnicodeDecodeError, AttributeError):
                        pass
                if n >= budget:
                    scans.append((db, last))
                    break
            budget -= n

    def due(self, table: str, now: float, hold_s: float, limit: int = MAX_SWEEPS) -> list[str]:
        """Keys whose oldest hold passed hold_s (at most `limit`). A key sent is not due again
        before RESWEEP_S, unless its agent notes it anew once the sweep ran."""
        keys, out = self.keys[table], []
        for k, (not_before, pending) in keys.items():
            if now >= not_before and now - _oldest(pending) > hold_s:
                out.append(k)
                if len(out) >= limit:
                    break
        for k in out:  # sent again only if its agent has not noted it by then
            keys[k] = (now + min(hold_s, RESWEEP_S), keys[k][1])
        return out

    def held_now(self) -> Counter:
        total: Counter = Counter()
        for keys in self.keys.values():
            for _, pending in keys.values():
                total.update(waiting(pending))
        return total


def _oldest(pending: list[dict[str, Any]]) -> float:
    return min(float(e.get("held_at") or 0.0) for e in pending)


def index(rt: Runtime) -> HoldIndex:
    if rt.hold_index is None:
        rt.hold_index = HoldIndex()
    return rt.hold_index


def register_sweeper(rt: Runtime, cfg: RoutingConfig) -> None:
    """Holds must be decided when their time passed even if no further input comes for their
    key: a timer sends SweepPending / SweepContact through by-user / by-contact, so the sweep
    runs in the state agent that owns the key's partition (tables are only written there)."""
    idx = index(rt)
    interval = max(1.0, min(cfg.hold_seconds / 4, 30.0))

    @rt.app.timer(interval)
    async def sweep_holds() -> None:
        now, out = time.time(), []
        for table, topic in TABLES.items():
            idx.rescan_if_moved(table, runtime.active_dbs(rt.tables[table]))
            idx.scan_step(table)
            name = rt.topology.internal[topic].name
            for key in idx.due(table, now, cfg.hold_seconds):
                msg = SweepPending(user_id=key) if table == "users" else SweepContact(email_key=key)
                out.append((name, key.encode(), encode(msg)))
        refresh_gauge(rt, idx)
        if out:
            await rt.output.send_all(out)


def refresh_gauge(rt: Runtime, idx: HoldIndex) -> None:
    now = idx.held_now()
    for pair in set(HOLD_REASONS) | set(now):
        rt.metrics.held_now.labels(*pair).set(now.get(pair, 0))
