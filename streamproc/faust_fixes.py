"""Corrections to faust-streaming 0.15.3's offset bookkeeping, applied once at app creation.

streamproc promises at-least-once: an input offset is committed only after its record was
processed (or dead-lettered). faust breaks that promise in five places, each found
by a fault test (tests/integration/test_faults.py, test_offsets.py) or a benchmark run:

1. Head gap of one (Consumer._new_offset). faust's committed offset is the *next* offset to
   read, yet its check for an unacknowledged record at the head of the acknowledged list is
   `min(acked) - committed > 1`: with exactly one record missing at the head it commits past
   it. Corrected to `min(acked) > committed`. (faust's tolerance of one missing offset was a
   guess at a transaction marker; streamproc/unstick.py asks the broker instead.)

2. No commit yet. A partition the group never committed has no committed offset in faust, and
   then `_new_offset` commits the first consecutive run of acknowledged offsets wherever it
   starts: a failed first batch (acks withheld) or a dropped first record is committed over.
   After faust's seek to the committed offsets, every assigned input partition without one is
   sought to its earliest offset (auto_offset_reset=earliest) and that offset is recorded as
   its committed offset, so the head-gap check (and unstick.py) cover it too.

3. Acks of records that were never processed (Consumer.ack). A stream skips, and acks, a
   record fetched in an earlier consumer generation or while the flow is suspended for a
   rebalance. After the revoke cleared the partition's bookkeeping, such an ack lands in the
   new generation's acknowledged list and is committed. Acks are refused while the flow is
   suspended and for records of another generation: the record is read again (a duplicate,
   which at-least-once allows and the delivery ledger absorbs), never skipped.

4. Dropped re-fetched records (Consumer._drain_messages). The fetch loop drops every record
   whose offset is below the partition's "read offset" ("DROPPED MESSAGE ROFF"). Records
   fetched before a seek back and handed over after it move the read offset up, and the
   re-fetched records below it are dropped. The loop below hands every record over, and
   detects offsets that hold no record (transaction markers, compacted records) only between
   two records handed in a row with no seek in between: it never declares a gap across a seek.

5. Records cleared from stream buffers (Channel.queue). A channel's buffer is created with
   clear_on_resume=True, so every `app.flow_control.resume()` empties it. faust resumes the
   flow twice when partitions are assigned: once for table recovery, once after seeking the
   stream partitions to their committed offsets. Records fetched after that seek and
   handed over before the second resume were cleared: never processed, never acknowledged,
   never fetched again. Seen after kill -9 and a restart (tests/integration/test_faults.py):
   of each input partition one record was processed, the rest of the backlog vanished.
   Channel buffers are no longer cleared: records of an earlier generation left in them
   are skipped by the streams (and fetched again after the seek), records of the current
   one are processed.

The same loop hands a record to the streams without faust's `wait_first` (four asyncio tasks
and their cancellation per record, so that a hand-off blocked on a full stream buffer can be
abandoned when the flow is suspended). hand_over() runs the hand-off synchronously until it
has to wait, then waits for that or for the flow's suspension (one waiter shared by all
records), and abandons it the same way. While the flow is suspended, faust's way is kept.

Records of a topic with a feed (streamproc/feeds.py: every topic streamproc's agents read) are
not handed to faust's streams at all: the loop collects them per feed and appends each
fetched batch's records to it in one step once the batch is read (_hand_to_feeds), nothing
while the flow is suspended. Back pressure: the records for a full feed are held until its
agent has taken it below its limit, and the loop fetches again only then; the records for
the other feeds are appended at once.
"""

from __future__ import annotations

import asyncio
from itertools import zip_longest
from typing import Any, Optional

from streamproc.feeds import feeds

_APPLIED = "_streamproc_offset_fixes"
_LAST = "_streamproc_last_offset"  # tp -> offset of the last record handed to the streams
_HANDING = "_streamproc_handing"  # the tp of the record the fetch loop is handing over now
_BATCHES = "_streamproc_fetched_batches"  # fetched batches the fetch loop handed over in full
_HOLDING = "_streamproc_holding"  # feed -> records of the batch being fetched, not yet handed


def gap_after(last: Optional[int], offset: int, committed: Optional[int]) -> Optional[range]:
    """The offsets that hold no record when `offset` is handed right after `last` (same
    partition, no seek in between), clipped to at or after `committed`; None if there are none
    or when it cannot be known (no previous record, or a re-fetch: offset <= last)."""
    if last is None or offset <= last + 1:
        return None
    start = last + 1 if committed is None else max(last + 1, committed)
    return range(start, offset) if start < offset else None


async def hand_over(coro: Any, suspended: Any) -> bool:
    """Run faust's hand-off coroutine `coro` (the fetch loop's callback) the way an asyncio
    Task would, without creating one: synchronously until it first waits, then waiting for
    the future it waits on or for `suspended` (a future that completes when the flow is
    suspended), whichever comes first. Returns False when the hand-off was abandoned because
    the flow was suspended (CancelledError is thrown into `coro`, as faust's wait_first
    cancels its task); True when it completed. An exception of `coro` propagates."""
    waiting_on: Any = None
    try:
        waiting_on = coro.send(None)
        while True:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False
                if not waiting_on.done():
                    await asyncio.wait((waiting_on, suspended),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if not waiting_on.done():  # the flow was suspended first
                        waiting_on.cancel()
                        waiting_on = None
                        try:
                            coro.throw(asyncio.CancelledError())
                        except (asyncio.CancelledError, StopIteration):
                            pass
                        else:
                            coro.close()
                        return False
            waiting_on = coro.send(None)
    except StopIteration:
        return True
    except BaseException:  # cancelled from outside (the fetcher stops), or coro's error
        if waiting_on is not None and hasattr(waiting_on, "cancel"):
            waiting_on.cancel()
        coro.close()
        raise


def stale_ack(consumer: Any, message: Any) -> bool:
    """True when acknowledging `message` could commit a record that was not processed: it was
    fetched in another consumer generation, or the flow is suspended (a rebalance is on)."""
    app = consumer.app
    return (getattr(message, "generation_id", app.consumer_generation_id)
            != app.consumer_generation_id or not app.flow_control.is_active())


def add_gap(consumer: Any, tp: Any, start: int, stop: int) -> None:
    """Record offsets start..stop-1 of `tp` as holding no record: they go into faust's gap
    tree for the partition, which Consumer._new_offset treats as acknowledged."""
    gaps = consumer._gap[tp]  # noqa: SLF001 - faust keeps no public view of it
    gaps.addi(start, stop)
    gaps.merge_overlaps()


def head_gap(acked: Any, committed: Optional[int]) -> bool:
    """True when the record at `committed` (the next offset to read) was not acknowledged
    while later ones were: nothing may be committed for the partition."""
    return bool(acked) and committed is not None and min(acked) > committed


def apply() -> None:
    from faust.transport import consumer as mod

    Consumer = mod.Consumer
    if getattr(Consumer, _APPLIED, False):
        return
    original_new_offset = Consumer._new_offset
    original_ack = Consumer.ack
    original_perform_seek = Consumer.perform_seek
    original_seek = Consumer.seek

    def _new_offset(self: Any, tp: Any) -> Any:
        committed = self._committed_offset.get(tp)
        if head_gap(self._acked.get(tp), committed):
            gaps = self._gap.get(tp)  # offsets known to hold no record count as acknowledged
            if not gaps or not gaps.overlaps(committed):
                return None
        return original_new_offset(self, tp)

    def ack(self: Any, message: Any) -> bool:
        if not stale_ack(self, message):
            return original_ack(self, message)
        with mod.ack_lock:
            if not message.acked:
                message.acked = True  # done with it, but its offset is not safe to commit
                self._unacked_messages.discard(message)
                mod.notify(self._waiting_for_ack)
        return False

    async def perform_seek(self: Any) -> None:
        await original_perform_seek(self)
        _last(self).clear()
        await seek_uncommitted_to_earliest(self)

    async def seek(self: Any, partition: Any, offset: int) -> None:
        _last(self).pop(partition, None)
        await original_seek(self, partition, offset)

    def ack_many(self: Any, messages: list[Any]) -> int:
        """`ack(m)` for each message in order, under one acquisition of faust's ack lock and
        with the lookups done once (the feeds acknowledge a whole batch; per record, the
        lock, the checks and the notify cost about as much as the rest of the hand-off).
        The same checks and bookkeeping as ack() above and faust's Consumer.ack; returns how
        many were acknowledged for commit."""
        app = self.app
        active = app.flow_control.is_active()
        generation = app.consumer_generation_id
        acks_enabled_for = app.topics.acks_enabled_for
        committed_of, index_of, acked_of = (self._committed_offset, self._acked_index,
                                            self._acked)
        unacked = self._unacked_messages
        n = 0
        with mod.ack_lock:
            try:
                for message in messages:
                    if message.acked:
                        continue
                    message.acked = True
                    if not active or getattr(message, "generation_id",
                                             generation) != generation:
                        unacked.discard(message)  # fix 3: done, but not safe to commit
                        continue
                    if not acks_enabled_for(message.topic):
                        continue
                    tp, offset = message.tp, message.offset
                    committed = committed_of[tp]
                    if committed is None or offset >= committed:
                        acked_index = index_of[tp]
                        if offset not in acked_index:
                            unacked.discard(message)
                            acked_index.add(offset)
                            acked_of[tp].append(offset)
                            n += 1
            finally:
                self._n_acked += n
                mod.notify(self._waiting_for_ack)
        return n

    from faust.channels import Channel

    original_queue = Channel.queue.fget

    def queue(self: Any) -> Any:
        created = self._queue is None
        q = original_queue(self)
        if created:  # fix 5: flow_control.resume() must not empty a stream's buffer
            queues = getattr(self.app.flow_control, "_queues", None)
            if queues is not None:
                queues.discard(q)
        return q

    Channel.queue = property(queue)
    Consumer._new_offset = _new_offset
    Consumer.ack = ack
    Consumer.ack_many = ack_many
    Consumer.perform_seek = perform_seek
    Consumer.seek = seek
    Consumer._drain_messages = _drain_messages
    setattr(Consumer, _APPLIED, True)


def handing(consumer: Any) -> Any:
    """The partition of the record the fetch loop is handing to the streams right now (a
    hand-off waits while a stream buffer is full), or None."""
    return consumer.__dict__.get(_HANDING)


def holding(consumer: Any, tp: Any) -> bool:
    """True when the fetch loop holds a record of `tp` for its feed (fetched in the batch it
    is handing over now, not yet in the feed)."""
    held = consumer.__dict__.get(_HOLDING)
    return bool(held) and any(m.tp == tp for ms in list(held.values()) for m in ms)


def batches_handed(consumer: Any) -> int:
    """How many fetched batches the fetch loop has handed over in full: once it grew, every
    record fetched before was handed to the streams (or dropped by faust)."""
    return consumer.__dict__.get(_BATCHES, 0)


def _last(consumer: Any) -> dict:
    last = consumer.__dict__.get(_LAST)
    if last is None:
        last = consumer.__dict__[_LAST] = {}
    return last


async def seek_uncommitted_to_earliest(consumer: Any) -> list[Any]:
    """Fix 2: seek every assigned input partition without a committed offset to its earliest
    offset and record that as its committed offset. Returns those partitions."""
    app = consumer.app
    changelogs = set(getattr(app.tables, "changelog_topics", ()) or ())
    tps = [tp for tp in consumer.assignment()
           if tp.topic not in changelogs and app.topics.acks_enabled_for(tp.topic)
           and consumer._committed_offset.get(tp) is None]
    if not tps:
        return []
    earliest = await consumer.earliest_offsets(*tps)
    done = []
    for tp in tps:
        offset = earliest.get(tp)
        if offset is None:
            continue
        await consumer.seek(tp, offset)
        consumer._committed_offset[tp] = offset
        done.append(tp)
    return done


def round_robin(lists: list[list[Any]]) -> list[Any]:
    """The records of several partitions interleaved one at a time (each partition's order
    kept), as faust's getmany hands a fetched batch over. An agent batch then spans the
    partitions instead of holding one partition's run: more distinct keys in flight at once
    for a destination that sends one request per record and keeps each key's requests in
    order (bench/delivery.py, Mailjet: a fifth fewer records/s without it)."""
    if len(lists) == 1:
        return list(lists[0])
    return [m for group in zip_longest(*lists) for m in group if m is not None]


async def _hand_to_feeds(held: dict[Any, list[Any]], suspend_flow: Any) -> bool:
    """Append each feed's records of a fetched batch to it: at once where the feed has room,
    and where it is full (its agent is behind) once its agent has taken it below its limit.
    The fetch loop waits for those before it fetches again (back pressure), but the other
    agents' records of the same fetch are never held back behind a busy one; the batch held
    for a full feed is ready the moment it has room. While a rebalance is on (or once it
    starts during a wait) nothing more is appended: a seek to the committed offsets follows
    and the records are fetched again. False when a wait was given up for a rebalance."""
    if suspend_flow.is_set():
        return False
    full = []
    for feed, messages in held.items():
        if feed.full():
            full.append((feed, messages))
        else:
            feed.append(messages)
    if not full:
        return True
    waiter = asyncio.ensure_future(suspend_flow.wait())  # completes when the flow is suspended
    try:
        for feed, messages in full:
            if not await feed.room(waiter):
                return False
            feed.append(messages)
    finally:
        waiter.cancel()
    return True


async def _fetch_batch(self: Any, timeout: float) -> Optional[list[tuple[Any, list[Any]]]]:
    """One fetched batch as [(tp, [faust Message, ...])]: faust 0.15.3's Consumer.getmany
    without its per-record work. getmany yields one record at a time through an async
    generator, round-robin over the partitions, asking the consumer thread for the highwater
    and telling the monitor the end offset once per record; for the feeds, which take a
    partition's records as a list, that cost more than the records' hand-off itself
    (bench/routing.py). The checks are faust's: records of partitions that are not active (nor
    buffered) are left out, and when the flow is not active the fetch seeks back to the
    committed offsets instead. None when nothing was fetched."""
    records, active_partitions = await self._wait_next_records(timeout)
    if records is None or self.should_stop:
        return None
    if not self.flow_active:
        self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
        try:
            await self.perform_seek()
        except Exception as ex:
            self.log.warning(f"exception performing seek when flow not active {ex}")
        return None
    to_message = self._to_message
    track_end = self.app.monitor.track_tp_end_offset
    buffered = self._buffered_partitions
    out = []
    for tp, batch in records.items():
        if not batch or not (active_partitions is None or tp in active_partitions
                             or tp in buffered):
            continue
        track_end(tp, self.highwater(tp))
        out.append((tp, [to_message(tp, record) for record in batch]))
    return out


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - fetch loop
    """faust 0.15.3's Consumer._drain_messages with fix 4: no record is dropped, and gaps are
    only detected between two records handed in a row (see gap_after). A fetched batch is
    read a partition at a time (_fetch_batch): the records of a topic with a feed are
    collected for it in one step; other records (faust's own streams) are handed over one at
    a time as faust does, stopping the batch when the flow is suspended or the consumer
    generation changes meanwhile (faust's getmany stops the same way)."""
    from faust.transport.consumer import CONSUMER_FETCHING

    callback = self.callback
    suspend_flow = self.suspend_flow
    suspended: Optional[asyncio.Future] = None  # completes when the flow is suspended
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    last = _last(self)
    state = self.__dict__
    committed = self._committed_offset
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    app = self.app
    yield_every, since_yield = 100, 0
    feed_of = feeds(self.app).get
    held: dict[Any, list[Any]] = {}  # feed -> records of this batch, not handed yet
    per_tp: dict[Any, list[list[Any]]] = {}  # feed -> the same records, a list per partition
    state[_HOLDING] = held
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            fetched = await _fetch_batch(self, 1.0)
            await self.sleep(0)
            if not self.should_stop:
                generation = app.consumer_generation_id
                stopped = False
                for tp, messages in fetched or ():
                    if stopped or not self.flow_active \
                            or app.consumer_generation_id != generation:
                        break
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    feed = feed_of(tp.topic)
                    acks_on = acks_enabled_for(tp.topic)
                    if feed is not None:  # handed to the feed with the rest of the batch
                        prev = last.get(tp)
                        for message in messages:
                            offset = message.offset
                            if prev is not None and offset > prev + 1 and acks_on:
                                gap = gap_after(prev, offset, committed.get(tp))
                                if gap is not None:
                                    add_gap(self, tp, gap.start, gap.stop)
                            prev = offset
                        last[tp] = prev
                        batch = held.get(feed)
                        if batch is None:
                            held[feed] = list(messages)
                            per_tp[feed] = [messages]
                        else:
                            batch += messages
                            per_tp[feed].append(messages)
                        continue
                    for message in messages:  # faust's streams: one record at a time
                        if not self.flow_active or app.consumer_generation_id != generation:
                            stopped = True
                            break
                        since_yield += 1
                        if since_yield > yield_every:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        gap = gap_after(last.get(tp), offset, committed.get(tp))
                        if gap is not None and acks_on:
                            add_gap(self, tp, gap.start, gap.stop)
                        state[_HANDING] = tp
                        if suspend_flow.is_set():  # a rebalance is on: faust's own way
                            await self.wait_first(callback(message), suspend_flow.wait())
                        else:
                            if suspended is None or suspended.done():
                                suspended = asyncio.ensure_future(suspend_flow.wait())
                            await hand_over(callback(message), suspended)
                        state[_HANDING] = None
                        last[tp] = offset
                if held:
                    for feed, lists in per_tp.items():
                        if len(lists) > 1:  # round-robin over the partitions, as faust's
                            held[feed] = round_robin(lists)  # getmany hands them over
                    per_tp.clear()
                    await _hand_to_feeds(held, suspend_flow)
                    held.clear()
                state[_BATCHES] = state.get(_BATCHES, 0) + 1
                unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        state[_HANDING] = None
        held.clear()
        unset_flag(CONSUMER_FETCHING)
        if suspended is not None:
            suspended.cancel()
