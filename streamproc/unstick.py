"""Unstick a partition whose commits stopped at a record that was never acknowledged.

faust commits a partition up to its first unacknowledged offset. Three things leave such a
gap on a worker that keeps running; the partition's commits then stop (its lag grows) and
the records in the gap are not processed until the next rebalance, restart or record:

- a batch that failed or was cancelled: acks_only_on_success withholds its acks on purpose;
- records skipped around a rebalance: faust skips records fetched in an earlier consumer
  generation; their acks are refused (streamproc/faust_fixes.py, fix 3), or never made by
  faust's compiled stream iterator. Seen after kill -9 of one of two workers: the survivor
  acked offsets 44.. of a partition it took over, never 38..43
  (tests/integration/test_faults.py). The stalled tail below was added when a kill -9 and
  restart left a whole input backlog unacknowledged with nothing after it; its cause, stream
  buffers emptied by faust, is fixed at the source (faust_fixes fix 5);
- offsets that hold no record at the committed offset: a transaction marker (the committed
  offset right after a transaction's last record is its commit marker) or a record removed
  by retention. faust's fetch loop only sees such gaps between two records it handed over in
  a row (streamproc/faust_fixes.py), not right after a seek to the committed offset.

Two signs show such a partition, each when it lasts STUCK_AFTER_S with no rebalance or
recovery running (the same committed offset all along):

- a gap: the lowest acknowledged offset is above the committed offset (later records were
  processed, the ones at the committed offset were not);
- a stalled tail: the consumer fetched past the committed offset, yet no record of the
  partition is acknowledged, tracked as in flight (in an agent's batch), waiting in its
  feed or a stream's buffer, or being handed over by the fetch loop. Nothing will ever acknowledge those offsets: the
  records were dropped before reaching an agent (a failed batch at the partition's end, or
  records faust skipped around a rebalance with nothing after them), or their commit failed
  (faust drops acknowledged offsets from its books when it starts a commit).

The broker is then asked for the first record at or after the committed offset. If there is
none before the next acknowledged (gap) or fetched (tail) offset, the offsets hold no record
and are committed over. Otherwise the partition is sought back to the committed offset: the
records are read again, processed and acknowledged, and commits go on. Records after them
are processed a second time (at-least-once; the delivery ledger skips what was already
delivered)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamproc.app import Runtime

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0
STUCK_AFTER_S = 10.0


@dataclass(frozen=True)
class Stuck:
    """A partition whose commits stay at `committed`: up to `upto` (exclusive) nothing was
    acknowledged; `tail` when nothing after it was either (`upto` is the fetch position)."""

    tp: Any
    committed: int
    upto: int
    tail: bool = False


def fetched_position(consumer: Any, tp: Any) -> int | None:
    """The next offset the Kafka consumer will fetch for `tp` (aiokafka's position, without a
    broker round trip), or None when unknown."""
    try:
        kafka = consumer._thread._ensure_consumer()  # noqa: SLF001 - faust's aiokafka driver
        return kafka._subscription.subscription.assignment.state_value(tp).position  # noqa: SLF001
    except Exception:  # not assigned / not started / another driver
        return None


def in_flight(app: Any, tp: Any) -> bool:
    """True when a record of `tp` is on its way to be acknowledged: tracked by a stream (it is
    in an agent's batch), waiting in its feed or a stream's buffer, or being handed over."""
    from streamproc.faust_fixes import handing, holding
    from streamproc.feeds import in_feed

    consumer = app.consumer
    if handing(consumer) == tp or holding(consumer, tp) or in_feed(app, tp):
        return True
    if any(m.tp == tp and not m.acked for m in list(consumer._unacked_messages)):  # noqa: SLF001
        return True
    for channel in app.topics._tp_index.get(tp, ()):  # noqa: SLF001 - the streams' buffers
        queue = getattr(channel, "_queue", None)
        if queue is not None and any(getattr(getattr(ev, "message", None), "tp", None) == tp
                                     for ev in list(getattr(queue, "_queue", ()))):
            return True
    return False


def stuck_partitions(rt: Runtime, seen: dict[Any, tuple[Any, float, int]], now: float,
                     ) -> list[Stuck]:
    """Partitions stuck behind a gap or at a stalled tail for STUCK_AFTER_S; `seen`
    remembers since when each one is in the same state. A tail counts only once the fetch
    loop handed over a whole fetched batch since (records fetched but not handed yet, while
    a hand-off waits for a full feed or stream buffer, are on their way), and only if no record of
    it is in flight then (checked once the time is up: under load commits move every second
    and the buffers are never scanned)."""
    from streamproc.faust_fixes import batches_handed

    app = rt.app
    consumer = getattr(app, "_consumer", None)
    if (consumer is None or getattr(app, "rebalancing", False)
            or not app.tables.recovery.completed.is_set()
            or not getattr(consumer, "flow_active", True)):
        seen.clear()
        return []
    if getattr(consumer, "_commit_fut", None) is not None:
        # a commit is on: faust took its acknowledged offsets out of the acked lists before
        # the broker confirmed them (and forgets them if the commit fails: the tail check
        # then sees them as never acknowledged, and they are read again)
        return []
    try:
        assigned = consumer.assignment()
    except Exception:  # consumer not started / stopping
        seen.clear()
        return []
    ours = set(rt.topics)
    batches = batches_handed(consumer)
    out = []
    for tp in assigned:
        if tp.topic not in ours:
            continue
        acked = consumer._acked.get(tp)  # noqa: SLF001 - faust keeps no public view of it
        committed = consumer._committed_offset.get(tp)  # noqa: SLF001
        state: Any = None
        if committed is None:
            pass
        elif acked:
            if min(acked) > committed:
                state = Stuck(tp, committed, min(acked))
        else:
            position = fetched_position(consumer, tp)
            if position is not None and position > committed:
                state = Stuck(tp, committed, position, tail=True)
        if state is None:
            seen.pop(tp, None)
            continue
        first = seen.get(tp)
        if first is None or first[0] != state:
            seen[tp] = (state, now, batches)
        elif now - first[1] >= STUCK_AFTER_S and (not state.tail or batches > first[2]):
            if state.tail and in_flight(app, tp):  # checked last: it scans buffers
                seen[tp] = (state, now, batches)
                continue
            out.append(state)
            seen.pop(tp, None)
    return out


async def first_offset_from(rt: Runtime, tp: Any, offset: int, timeout: float = 10.0,
                            stop: int | None = None) -> int | None:
    """The offset of the first record at or after `offset` in `tp`, read with a group-less
    consumer (the same isolation level as the worker's); None only when there is none before
    `stop` (the reader's position reached it). Raises TimeoutError when the broker did not
    answer within `timeout`: "no answer" must never be taken for "no record"."""
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
            if stop is not None and await consumer.position(ktp) >= stop:
                return None
        raise TimeoutError(f"no record of {tp.topic}:{tp.partition} from offset {offset} "
                           f"within {timeout} s")
    finally:
        await consumer.stop()


def skip_empty_offsets(consumer: Any, tp: Any, start: int, stop: int) -> None:
    """Let faust commit over offsets start..stop-1, which hold no record: they go into the
    partition's gap tree, which Consumer._new_offset treats as acknowledged (with the next
    acknowledged record)."""
    from streamproc.faust_fixes import add_gap

    add_gap(consumer, tp, start, stop)


async def unstick(rt: Runtime, stuck: Stuck) -> str:
    """Handle one stuck partition: "skipped" when the missing offsets hold no record (the
    broker's first record from the committed offset on is at or after `upto`), else "sought"
    back."""
    consumer = rt.app.consumer
    tp, committed, upto = stuck.tp, stuck.committed, stuck.upto
    try:
        first = await first_offset_from(rt, tp, committed,
                                        stop=upto if stuck.tail else None)
    except Exception as e:  # cannot tell: reading again is always safe
        log.warning("%s:%s: reading offset %d to check it failed (%r)", tp.topic, tp.partition,
                    committed, e)
        first = committed
    if stuck.tail:  # skip only when no record at all was fetched: else one is unprocessed
        first = upto if first is None or first >= upto else committed
    if first is not None and committed < first <= upto:
        log.info("%s:%s: offsets %d..%d hold no record (transaction markers, aborted or "
                 "removed records): committing over them", tp.topic, tp.partition, committed,
                 first - 1)
        rt.metrics.offsets_skipped.labels(tp.topic).inc(first - committed)
        skip_empty_offsets(consumer, tp, committed, first)
        return "skipped"
    if stuck.tail:
        log.warning("%s:%s is stuck at offset %d (offsets %d..%d were fetched, and never "
                    "acknowledged nor in flight): seeking back to %d to process them again",
                    tp.topic, tp.partition, committed, committed, upto - 1, committed)
    else:
        log.warning("%s:%s is stuck at offset %d (offsets %d..%d were never acknowledged; "
                    "later ones were): seeking back to %d to process them again",
                    tp.topic, tp.partition, committed, committed, upto - 1, committed)
    rt.metrics.partition_unstuck.labels(tp.topic).inc()
    await consumer.seek(tp, committed)
    return "sought"


def install(rt: Runtime) -> None:
    seen: dict[Any, tuple[Any, float, int]] = {}
    skipped_tails: dict[Any, Stuck] = {}  # tails found empty: not probed again while unchanged

    @rt.app.timer(CHECK_EVERY_S)
    async def unstick_partitions() -> None:
        for stuck in stuck_partitions(rt, seen, time.monotonic()):
            if stuck.tail and skipped_tails.get(stuck.tp) == stuck:
                continue
            if await unstick(rt, stuck) == "skipped" and stuck.tail:
                skipped_tails[stuck.tp] = stuck
