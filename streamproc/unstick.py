"""Unstick a partition whose commits stopped at a record that was never acknowledged.

faust commits a partition up to its first unacknowledged offset. Three things leave such a
gap on a worker that keeps running; the partition's commits then stop (its lag grows) and
the records in the gap are not processed until the next rebalance or restart:

- a batch that failed or was cancelled: acks_only_on_success withholds its acks on purpose;
- records skipped around a rebalance: faust skips records fetched in an earlier consumer
  generation, and their acks are refused (streamproc/faust_fixes.py, fix 3). Seen after
  kill -9 of one of two workers: the survivor acked offsets 44.. of a partition it took
  over, never 38..43 (tests/integration/test_faults.py);
- offsets that hold no record at the committed offset: a transaction marker (the committed
  offset right after a transaction's last record is its commit marker) or a record removed
  by retention. faust's fetch loop only sees such gaps between two records it handed over in
  a row (streamproc/faust_fixes.py), not right after a seek to the committed offset.

A timer looks for an assigned partition of ours whose lowest acknowledged offset has stayed
above its committed offset for STUCK_AFTER_S (no rebalance or recovery running), and asks the
broker for the first record at or after the committed offset. If that is a later offset, the
offsets before it hold no record and are committed over. Otherwise the partition is sought
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


async def first_offset_from(rt: Runtime, tp: Any, offset: int, timeout: float = 10.0,
                            ) -> int | None:
    """The offset of the first record at or after `offset` in `tp`, read with a group-less
    consumer (the same isolation level as the worker's); None if none came."""
    from aiokafka import TopicPartition

    from streamproc.topic_reader import new_consumer

    consumer = new_consumer(rt.settings, "unstick-probe")
    await consumer.start()
    try:
        ktp = TopicPartition(tp.topic, tp.partition)
        consumer.assign([ktp])
        consumer.seek(ktp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await consumer.getmany(ktp, timeout_ms=500, max_records=1)
            records = got.get(ktp)
            if records:
                return records[0].offset
        return None
    finally:
        await consumer.stop()


def skip_empty_offsets(consumer: Any, tp: Any, start: int, stop: int) -> None:
    """Let faust commit over offsets start..stop-1, which hold no record: they go into the
    partition's gap tree, which Consumer._new_offset treats as acknowledged."""
    gaps = consumer._gap[tp]  # noqa: SLF001
    gaps.addi(start, stop)
    gaps.merge_overlaps()


async def unstick(rt: Runtime, tp: Any, committed: int) -> str:
    """Handle one stuck partition: "skipped" when the missing offsets hold no record (the
    broker's first record from `committed` on is a later one), else "sought" back."""
    consumer = rt.app.consumer
    acked = consumer._acked.get(tp) or [committed]  # noqa: SLF001
    try:
        first = await first_offset_from(rt, tp, committed)
    except Exception as e:  # cannot tell: reading again is always safe
        log.warning("%s:%s: reading offset %d to check it failed (%r)", tp.topic, tp.partition,
                    committed, e)
        first = None
    if first is not None and committed < first <= min(acked):
        log.info("%s:%s: offsets %d..%d hold no record (transaction markers or removed "
                 "records): committing over them", tp.topic, tp.partition, committed, first - 1)
        rt.metrics.offsets_skipped.labels(tp.topic).inc(first - committed)
        skip_empty_offsets(consumer, tp, committed, first)
        return "skipped"
    log.warning("%s:%s is stuck at offset %d (offsets %d..%d were never acknowledged; "
                "later ones were): seeking back to %d to process them again",
                tp.topic, tp.partition, committed, committed, min(acked) - 1, committed)
    rt.metrics.partition_unstuck.labels(tp.topic).inc()
    await consumer.seek(tp, committed)
    return "sought"


def install(rt: Runtime) -> None:
    seen: dict[Any, tuple[int, float]] = {}

    @rt.app.timer(CHECK_EVERY_S)
    async def unstick_partitions() -> None:
        for tp, committed in stuck_partitions(rt, seen, time.monotonic()):
            await unstick(rt, tp, committed)
