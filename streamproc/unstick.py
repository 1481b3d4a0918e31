"""Unstick a partition whose commits stopped at a record that was never acknowledged.

faust commits a partition up to its first unacknowledged offset. Two things leave such a gap
on a worker that keeps running, and then the partition's commits stop for good (its lag
grows) and the records in the gap are not processed until the next rebalance or restart:

- a batch that failed or was cancelled: acks_only_on_success withholds its acks on purpose;
- faust-streaming 0.15.3 dropping records around a rebalance: its fetch loop records the read
  offset of a message whose hand-off to the streams was cancelled by the rebalance
  (consumer._drain_messages), and drops the records re-fetched below that offset after the
  seek to the committed offset ("DROPPED MESSAGE ROFF"). Seen after kill -9 of one of two
  workers: the survivor acked offsets 44.. of a partition it took over, never 38..43, and
  the partition stayed 30-90 records behind while the rest flowed
  (tests/integration/test_faults.py::test_kill_one_of_two_workers_moves_partitions_and_state).

A timer looks for an assigned partition of ours whose lowest acknowledged offset has stayed
above its committed offset for STUCK_AFTER_S (no rebalance or recovery running), and seeks it
back to the committed offset: the gap is read again, processed and acknowledged, and commits
go on. Records after the gap are processed a second time (at-least-once; the delivery ledger
skips what was already delivered)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamproc.app import Runtime

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0
STUCK_AFTER_S = 10.0


def stuck_partitions(rt: Runtime, seen: dict[Any, tuple[int, float]], now: float,
                     ) -> list[tuple[Any, int]]:
    """(tp, committed offset) of partitions stuck behind a gap for STUCK_AFTER_S; `seen`
    remembers since when each gap exists (the same committed offset)."""
    app = rt.app
    consumer = getattr(app, "_consumer", None)
    if (consumer is None or getattr(app, "rebalancing", False)
            or not app.tables.recovery.completed.is_set()):
        seen.clear()
        return []
    try:
        assigned = consumer.assignment()
    except Exception:  # consumer not started / stopping
        seen.clear()
        return []
    ours = set(rt.topics)
    out = []
    for tp in assigned:
        if tp.topic not in ours:
            continue
        acked = consumer._acked.get(tp)  # noqa: SLF001 - faust keeps no public view of it
        committed = consumer._committed_offset.get(tp)  # noqa: SLF001
        if not acked or committed is None or min(acked) <= committed:
            seen.pop(tp, None)
            continue
        first = seen.get(tp)
        if first is None or first[0] != committed:
            seen[tp] = (committed, now)
        elif now - first[1] >= STUCK_AFTER_S:
            out.append((tp, committed))
            seen.pop(tp, None)
    return out


def install(rt: Runtime) -> None:
    seen: dict[Any, tuple[int, float]] = {}

    @rt.app.timer(CHECK_EVERY_S)
    async def unstick_partitions() -> None:
        for tp, committed in stuck_partitions(rt, seen, time.monotonic()):
            acked = rt.app.consumer._acked.get(tp) or [committed]  # noqa: SLF001
            log.warning("%s:%s is stuck at offset %d (offsets %d..%d were never acknowledged; "
                        "later ones were): seeking back to %d to process them again",
                        tp.topic, tp.partition, committed, committed, min(acked) - 1,
                        committed)
            rt.metrics.partition_unstuck.labels(tp.topic).inc()
            await rt.app.consumer.seek(tp, committed)
