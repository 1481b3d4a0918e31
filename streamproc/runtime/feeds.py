"""Feeds: the fetch loop hands each agent its topic's records a fetched batch at a time.

faust hands every record to a stream on its own (a callback, an Event, a queue put, the
stream's iterator and a refcounted ack per record): several times a bare aiokafka loop's CPU
per record (bench/routing.py). For the agents' topics the fetch loop appends each partition's
records to the topic's Feed as one chunk tagged with its checkpoint epoch; the agent takes a
Batch and reports it done or failed to the checkpoint. A feed holding `max_records` makes the
fetch loop wait for room (the other feeds' records are appended first); 16384 covers a fetch
while an agent drains its feed (with 4096 agents ran dry: bench/routing.py, bench/delivery.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from itertools import zip_longest
from time import monotonic
from typing import Any, AsyncIterator, NamedTuple, Optional

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 16384


class Chunk(NamedTuple):
    tp: Any
    epoch: int
    messages: list[Any]


class FeedEvent:
    """An agent batch's record: the faust Message as `.message`, like a faust Event."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message


class Feed:
    """The fetched records of one topic on their way to its agent, in fetch order."""

    def __init__(self, topic: str, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        self.topic, self.max_records = topic, max(1, max_records)
        self._chunks: deque[Chunk] = deque()
        self._size = 0
        self._data: Optional[asyncio.Future] = None  # the agent waits for records
        self._space: Optional[asyncio.Future] = None  # the fetch loop waits for room

    def __len__(self) -> int:
        return self._size

    def full(self) -> bool:
        return self._size >= self.max_records

    def append(self, chunk: Chunk) -> None:
        if chunk.messages:
            self._chunks.append(chunk)
            self._size += len(chunk.messages)
            _wake(self._data)

    async def room(self, suspended: asyncio.Future) -> bool:
        """Wait for room (True), or until `suspended` completes first (False: a rebalance)."""
        while self._size >= self.max_records:
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            await asyncio.wait((self._space, suspended), return_when=asyncio.FIRST_COMPLETED)
            if suspended.done():
                return False
        return True

    def pop(self, max_: int) -> list[Chunk]:
        """Chunks holding up to `max_` records from the head of the feed (none waits)."""
        out: list[Chunk] = []
        n, chunks = 0, self._chunks
        while chunks and n < max_:
            chunk, room = chunks[0], max_ - n
            if len(chunk.messages) > room:  # split: the rest stays at the head
                chunks[0] = chunk._replace(messages=chunk.messages[room:])
                chunk = chunk._replace(messages=chunk.messages[:room])
            else:
                chunks.popleft()
            out.append(chunk)
            n += len(chunk.messages)
        if n:
            self._size -= n
            _wake(self._space)
        return out

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the feed holds a record (True) or `timeout` seconds passed (False)."""
        if self._size:
            return True
        if self._data is None or self._data.done():
            self._data = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._data), timeout)
        except asyncio.TimeoutError:
            return bool(self._size)
        return True


def _wake(fut: Optional[asyncio.Future]) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def feeds_of(app: Any) -> dict[str, Feed]:
    """The app's feeds by topic name (the fetch loop's routing table)."""
    return app.__dict__.setdefault("streamproc_feeds", {})


def feed_for(app: Any, topic: str, max_records: int = DEFAULT_MAX_RECORDS) -> Feed:
    """The feed of `topic`, created on first use (before the first fetch). One agent takes
    from it."""
    return feeds_of(app).setdefault(topic, Feed(topic, max_records))


def round_robin(lists: list[list[Any]]) -> list[Any]:
    """Partitions' records interleaved, each one's order kept: more keys in flight per batch
    (bench/delivery.py, Mailjet: a fifth fewer records/s without it)."""
    if len(lists) == 1:
        return list(lists[0])
    return [m for group in zip_longest(*lists) for m in group if m is not None]


class Batch:
    """One agent batch. `with batch as events:` reports it to the checkpoint: done when the
    body returns (its outputs and changelog records were awaited in it); when the body
    raises, its partitions are sought back to their checkpoint and fetched again after a
    backoff, and the error is logged, not raised (a cancellation is). An error with a
    `hold_s` attribute holds the batch instead: not a failure, read again after hold_s."""

    def __init__(self, consumer: Any, chunks: list[Chunk]) -> None:
        self.consumer, self.chunks, self.ended = consumer, chunks, False
        tps: dict[Any, list[Any]] = {}  # each partition's records in offset order, in one pass
        for c in chunks: tps.setdefault(c.tp, []).extend(c.messages)  # noqa: E701 (a new list)
        self.events = [FeedEvent(m) for m in round_robin(list(tps.values()))]  # per partition

    def __enter__(self) -> list[FeedEvent]:
        return self.events

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        checkpoint, self.ended = self.consumer.checkpoint, True
        if exc_type is None:
            for c in self.chunks:
                checkpoint.done(c.tp, c.epoch, c.messages[-1].offset, len(c.messages))
            return False
        hold_s = getattr(exc, "hold_s", None)
        for tp, epoch in {(c.tp, c.epoch) for c in self.chunks}:
            self.consumer.rewind(tp, epoch, hold_s)
        if hold_s is None:
            first = self.chunks[0].messages[0]
            log.warning("a batch of %d records failed (%r), first %s:%s@%s: its partitions "
                        "are read again from their checkpoint", len(self.events), exc,
                        first.topic, first.partition, first.offset)
        return issubclass(exc_type, Exception)


async def take(app: Any, feed: Feed, max_: int, within: float) -> AsyncIterator[Batch]:
    """Batches of up to `max_` records of `feed`: the first record, then what arrives within
    `within` seconds of it. Records handed before their partition was last sought are left
    out: they are fetched again."""
    loop, flow = asyncio.get_running_loop(), app.flow_control
    inbound = app.monitor.stream_inbound_time  # faust's livelock check reads it
    while True:
        await feed.wait()
        deadline = loop.time() + within
        chunks = feed.pop(max_)
        try:  # popped records not ended in a batch (the agent stopped) are read again
            n = sum(len(c.messages) for c in chunks)
            while n < max_ and (left := deadline - loop.time()) > 0 and await feed.wait(left):
                chunks += feed.pop(max_ - n)
                n = sum(len(c.messages) for c in chunks)
            if not flow.is_active():
                await flow.acquire()  # a rebalance is on: its seeks decide what is stale
            checkpoint = app.consumer.checkpoint
            chunks = [c for c in chunks if checkpoint.epoch(c.tp) == c.epoch]
            if chunks:
                inbound.update(dict.fromkeys((c.tp for c in chunks), monotonic()))
                batch = Batch(app.consumer, chunks)
                yield batch
                chunks = [] if batch.ended else chunks
        finally:
            for tp in {c.tp for c in chunks}:
                app.consumer.checkpoint.reseek(tp)
