"""The worker's Consumer, chosen through faust's transport registry (broker URL scheme
`streamproc://`): faust's aiokafka Consumer with the fetch loop, seeks and commits of the
checkpoint (runtime/checkpoint.py).

- The fetch loop hands the agents' topics' records to their feeds as chunks tagged with the
  partition's epoch and tells the checkpoint the fetch position; any record of theirs it does
  not hand over (fetched around a seek or a rebalance) makes it seek the partition back.
  Other records (table changelogs) go to faust's callback as faust's own loop hands them.
- Commits (faust's timer, shutdown, a revoke) send the checkpoint, never faust's acks.
- Assignment: the checkpoint starts each partition at its committed offset, or its earliest
  offset when the group never committed one, and the partition is sought there.
- A failed batch pauses its partitions; the loop seeks them back and resumes them after a
  backoff.
- Recovery's changelog queue is emptied when a rebalance starts, not each time faust resumes
  the flow (records fetched after recovery's seek were thrown away: a recovery that waited
  for them for ever, tests/unit/test_runtime_consumer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from time import monotonic
from typing import Any, Optional

from faust.transport.consumer import CONSUMER_FETCHING, ensure_TPset
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

from streamproc.runtime.checkpoint import Checkpoint
from streamproc.runtime.feeds import Chunk, Feed, feeds_of

log = logging.getLogger(__name__)

SCHEME = "streamproc"


class ConsumerThread(driver.AIOKafkaConsumerThread):
    positions: dict[Any, int] = {}

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust reads read_uncommitted unless it runs transactions: records of aborted
        # transactions would be processed. aiokafka reads the level when its fetcher starts.
        consumer._isolation_level = self.app.streamproc.settings.kafka.isolation_level
        return consumer

    async def _fetch_records(self, consumer: Any, active_partitions: Any,
                             timeout: Optional[float] = None,
                             max_records: Optional[int] = None) -> Any:
        """faust's fetch, then the fetch positions of the partitions asked for, read in the
        consumer's thread before anything else can move them."""
        self.positions = {}  # none unless this fetch ran
        records = await super()._fetch_records(consumer, active_partitions, timeout=timeout,
                                               max_records=max_records)
        subscription = consumer._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        if assignment is not None:
            states = [(tp, assignment.state_value(tp)) for tp in active_partitions or ()]
            self.positions = {tp: st.position for tp, st in states
                              if st is not None and st.has_valid_position}
        return records


class Consumer(driver.Consumer):
    """faust's aiokafka Consumer, committing streamproc's checkpoint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checkpoint = Checkpoint()
        self._resume_at: dict[Any, float] = {}
        self._fetch_epochs: dict[Any, int] = {}
        self.faust_stream_records = 0  # records handed to faust streams (none expected)
        # recovery's queue is emptied at a revoke instead of each time the flow resumes
        self.app.flow_control._queues.discard(self.app.tables.changelog_queue)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def committed_offset(self, tp: Any) -> Optional[int]:
        """The partition's last committed offset known to this worker (next to read)."""
        return self._committed_offset.get(tp)

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True,
                           ) -> bool:
        committed = self._committed_offset
        offsets = self.checkpoint.committable(committed, topics)
        if not offsets:
            return False
        before = {tp: committed.get(tp) for tp in offsets}
        done = await self._commit_offsets(offsets, start_new_transaction)
        if not done:  # faust records the offsets even when the commit failed: send again
            committed.update(before)
        return done

    async def _commit_revoked(self, revoked: Any) -> None:
        while self._commit_fut is not None:  # one commit at a time, then ours
            await self.maybe_wait_for_commit_to_finish()
        await self.commit(revoked)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            await asyncio.wait_for(self._commit_revoked(revoked), 10.0)
        except Exception as exc:  # noqa: BLE001 - the next owner reads them again
            log.warning("committing the revoked partitions' checkpoint failed (%r): their "
                        "records after the last commit are processed again", exc)
        self.checkpoint.revoke(revoked)
        self._resume_at = {tp: at for tp, at in self._resume_at.items() if tp not in revoked}
        await super().on_partitions_revoked(revoked)  # faust stops the flow
        self.app.tables.changelog_queue.clear()  # see the module docstring

    async def perform_seek(self) -> None:
        """faust's seek to the committed offsets; then the checkpoint starts every assigned
        partition of the agents' topics at its committed offset, or at its earliest offset
        when the group never committed one, in a new epoch, and each is sought there."""
        await super().perform_seek()
        topics = feeds_of(self.app)
        tps = [tp for tp in self.assignment() if tp.topic in topics]
        starts = {tp: self._committed_offset.get(tp) for tp in tps}
        missing = [tp for tp, offset in starts.items() if offset is None]
        if missing:
            starts.update(await self.earliest_offsets(*missing))
        self.checkpoint.assign(starts)  # first: what is fetched before the seek is stale
        self._resume_at.clear()
        await self.seek_wait(starts)

    def rewind(self, tp: Any, epoch: int, hold_s: Optional[float] = None) -> None:
        """A batch with records of `tp` failed: pause it; the fetch loop seeks it back and
        resumes it after a backoff, or after `hold_s` for a held batch (not a failure)."""
        backoff = self.checkpoint.rewind(tp, epoch, failed=hold_s is None)
        if backoff is not None:
            self.pause_partitions([tp])
            self._resume_at[tp] = monotonic() + (backoff if hold_s is None else hold_s)

    async def _apply_rewinds(self) -> bool:
        """Seek the partitions sought back; resume those whose backoff passed. False when a
        seek failed (a rebalance revoked the partition, or the broker): nothing may be
        fetched before it is sought again."""
        offsets = dict(self.checkpoint.rewinds)
        self.checkpoint.rewinds.clear()
        try:
            if offsets:
                await self.seek_wait(offsets)
        except Exception as exc:  # noqa: BLE001 - tried again before the next fetch
            log.info("seeking %s back failed (%r); trying again", offsets, exc)
            for tp in offsets:
                self.checkpoint.reseek(tp)  # nothing when it was revoked
            return False
        due = ensure_TPset(tp for tp, at in self._resume_at.items() if at <= monotonic())
        self._resume_at = {tp: at for tp, at in self._resume_at.items() if tp not in due}
        self.resume_partitions(due)  # faust TPs: faust adds them to its active set unconverted
        return True

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        self._fetch_epochs = self.checkpoint.epochs()  # as the fetch starts, after any wait
        # a copy: the consumer's thread iterates it while agents pause partitions
        return await super()._getmany(frozenset(active_partitions), timeout)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - see tests
        checkpoint, callback = self.checkpoint, self.callback
        feed_of = feeds_of(self.app).get
        to_message = self._to_message
        changelogs = self.app.tables.changelog_topics
        suspend_flow = self.suspend_flow
        suspended: Optional[asyncio.Future] = None
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                if not await self._apply_rewinds():
                    await self.sleep(0.5)
                    continue
                self._fetch_epochs = {}
                self.diag.set_flag(CONSUMER_FETCHING)
                records, _ = await self._wait_next_records(1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                epochs, active = self._fetch_epochs, self.flow_active
                held: dict[Feed, list[Chunk]] = {}
                for tp, batch in (records or {}).items():
                    if not batch:
                        continue
                    feed = feed_of(tp.topic)
                    if feed is not None:
                        epoch = epochs.get(tp)
                        if active and epoch is not None \
                                and checkpoint.handed(tp, epoch, len(batch)):
                            held.setdefault(feed, []).append(
                                Chunk(tp, epoch, [to_message(tp, r) for r in batch]))
                        else:  # fetched around a seek or while the flow is off
                            checkpoint.reseek(tp)
                        continue
                    if not active:
                        continue  # table changelogs: recovery seeks them again
                    if tp.topic not in changelogs:
                        self.faust_stream_records += len(batch)
                    for record in batch:  # faust's own way: one record at a time
                        if suspended is None or suspended.done():
                            suspended = asyncio.ensure_future(suspend_flow.wait())
                        if not await hand_over(callback(to_message(tp, record)), suspended):
                            break
                if active:
                    for tp, position in self._thread.positions.items():
                        epoch = epochs.get(tp)
                        if epoch is not None:
                            checkpoint.fetched_to(tp, epoch, position)
                if held and not await _hand_to_feeds(held, suspend_flow):
                    for chunks in held.values():
                        for chunk in chunks:
                            checkpoint.reseek(chunk.tp)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except (asyncio.CancelledError, *self.consumer_stopped_errors):
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)
            if suspended is not None:
                suspended.cancel()


async def _hand_to_feeds(held: dict[Feed, list[Chunk]], suspend_flow: Any) -> bool:
    """Append each feed's chunks, those with room first; a full feed's once its agent took it
    below its limit (back pressure: the loop waits). False when a rebalance started during a
    wait: the chunks left in `held` were not handed over."""
    waiter: Optional[asyncio.Future] = None
    try:
        for feed, chunks in sorted(held.items(), key=lambda item: item[0].full()):
            if feed.full():
                waiter = waiter or asyncio.ensure_future(suspend_flow.wait())
                if not await feed.room(waiter):
                    return False
            for chunk in chunks:
                feed.append(chunk)
            chunks.clear()
    finally:
        if waiter is not None:
            waiter.cancel()
    return True


async def hand_over(coro: Any, suspended: asyncio.Future) -> bool:
    """Run faust's hand-off coroutine `coro` the way a Task would, without creating one:
    synchronously until it waits, then for what it waits on or for `suspended`, whichever
    comes first (faust's wait_first makes four tasks per record for this). False when it was
    abandoned because the flow was suspended (CancelledError is thrown into `coro`)."""
    waiting_on: Any = None
    try:
        while True:
            waiting_on = coro.send(None)
            if waiting_on is None:  # a bare yield
                await asyncio.sleep(0)
                continue
            waiting_on._asyncio_future_blocking = False
            if not waiting_on.done():
                await asyncio.wait((waiting_on, suspended), return_when=asyncio.FIRST_COMPLETED)
                if not waiting_on.done():  # the flow was suspended first
                    waiting_on.cancel()
                    waiting_on = None
                    with contextlib.suppress(asyncio.CancelledError, StopIteration):
                        coro.throw(asyncio.CancelledError())
                    coro.close()
                    return False
    except StopIteration:
        return True
    except BaseException:
        if waiting_on is not None:
            waiting_on.cancel()
        coro.close()
        raise


class Transport(driver.Transport):
    Consumer = Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def started_consumer(app: Any) -> Optional[Consumer]:
    """The app's consumer once it exists (app.consumer would create one)."""
    return app._consumer
