"""Record feeds: the fetch loop hands each agent its records a fetched batch at a time.

faust hands every record to a stream on its own: a conductor callback, an Event and a queue
put per record, then the stream's iterator, its take() buffer task and a refcounted ack per
record. On this 2-core machine that machinery alone costs several times a bare aiokafka
loop's CPU per record (bench/routing.py, the `faust_floor` rows), and streamproc pays it on
every hop (raw -> repartition -> state -> sink -> delivery).

A Feed replaces it for the topics streamproc's agents read (inputs, repartition topics,
sinks). faust still owns everything else: the consumer group and its assignment, fetching,
offsets and commits (with streamproc/faust_fixes.py), the tables, their changelogs, recovery
and standbys; each agent is still a faust agent on its topic. What changes is the hand-off:

- the fetch loop (faust_fixes._drain_messages) appends each fetched batch's records of the
  topic to the feed in one step; when the feed holds `max_records` or more it holds them
  until the agent has taken it below (back pressure) and fetches nothing new meanwhile,
  giving up when the flow is suspended for a rebalance (a seek follows, the records are
  fetched again). The records of the same fetch for the other feeds are appended first, so
  no agent waits behind a busy one. `max_records` (16384) covers the time a new fetch takes
  while an agent drains its feed: with faust's 4096 the agents ran dry between fetches (one
  worker routing at 0.74 of a core; Segment and CleverTap delivery at 24k records/s, 29-32k
  with 16384, bench/routing.py and bench/delivery.py);
- the agent takes up to `max_` records, waiting at most `within` seconds for more once it
  has one (faust's take_events() contract), tracks them as in flight with the consumer, and
  acknowledges them only when its batch body returned (a failed batch leaves its offsets
  uncommitted, streamproc/agents.py acks_only_on_success);
- records fetched in an earlier consumer generation are dropped when taken, after waiting
  for a suspended flow to resume: every rebalance ends with a seek to the committed offsets,
  so they are fetched again (faust's streams skip them the same way).
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import monotonic
from typing import Any, AsyncIterator, Optional

FEEDS = "_streamproc_feeds"  # app attribute: topic name -> Feed

DEFAULT_MAX_RECORDS = 16384  # records; see the module docstring


class FeedEvent:
    """What an agent batch holds per record: the faust Message (`.message`), like a faust
    Event. Tables read and write the partition of the current event's message
    (streamproc.agents.set_current_event), which only needs `.message`."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message


class Feed:
    """The fetched records of one topic on their way to its agent, in fetch order."""

    def __init__(self, topic: str, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.topic = topic
        self.max_records = max_records
        self._chunks: deque[list[Any]] = deque()
        self._size = 0
        self._data: Optional[asyncio.Future] = None  # the taker waits for records
        self._space: Optional[asyncio.Future] = None  # the fetch loop waits for room

    def __len__(self) -> int:
        return self._size

    def full(self) -> bool:
        return self._size >= self.max_records

    def holds(self, tp: Any) -> bool:
        """True when a record of partition `tp` waits in the feed."""
        return any(m.tp == tp for chunk in list(self._chunks) for m in chunk)

    def append(self, messages: list[Any]) -> None:
        """Append `messages` (in fetch order). The fetch loop waits for room() first when the
        feed is full (see the module docstring)."""
        if messages:
            self._chunks.append(messages)
            self._size += len(messages)
            _wake(self._data)

    async def room(self, suspended: Optional[asyncio.Future] = None) -> bool:
        """Wait until the feed holds fewer than `max_records` (True), or until `suspended` (a
        future that completes when the flow is suspended) completes first (False)."""
        while self._size >= self.max_records:
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            waiters: tuple[Any, ...] = (self._space,) if suspended is None else (
                self._space, suspended)
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if suspended is not None and suspended.done():
                return False
        return True

    def pop(self, max_: int) -> list[Any]:
        """Up to `max_` records from the head of the feed (none waits)."""
        out: list[Any] = []
        chunks = self._chunks
        while chunks and len(out) < max_:
            chunk = chunks[0]
            room = max_ - len(out)
            if len(chunk) <= room:
                out += chunks.popleft()
            else:
                out += chunk[:room]
                chunks[0] = chunk[room:]
        if out:
            self._size -= len(out)
            _wake(self._space)
        return out

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the feed holds a record (True) or `timeout` seconds passed (False)."""
        if self._size:
            return True
        if self._data is None or self._data.done():
            self._data = asyncio.get_running_loop().create_future()
        fut = self._data
        if timeout is None:
            await asyncio.shield(fut)
            return True
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            return bool(self._size)
        return True

    def clear(self) -> int:
        """Drop every waiting record; returns how many."""
        n = self._size
        self._chunks.clear()
        self._size = 0
        _wake(self._space)
        return n


def _wake(fut: Optional[asyncio.Future]) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def feeds(app: Any) -> dict[str, Feed]:
    """The app's feeds by topic name (the fetch loop's routing table)."""
    found = getattr(app, FEEDS, None)
    if found is None:
        found = {}
        setattr(app, FEEDS, found)
    return found


def feed_for(app: Any, topic: str, max_records: int = DEFAULT_MAX_RECORDS) -> Feed:
    """The feed of `topic`, created on first use. One agent takes from it."""
    registry = feeds(app)
    feed = registry.get(topic)
    if feed is None:
        feed = registry[topic] = Feed(topic, max_records)
    return feed


def in_feed(app: Any, tp: Any) -> bool:
    """True when a record of partition `tp` waits in its topic's feed."""
    feed = feeds(app).get(tp.topic)
    return feed is not None and feed.holds(tp)


def _mark_inbound(app: Any, messages: list[Any]) -> None:
    """Tell faust's monitor that the partitions' records reached an agent (a faust stream
    does this per event). faust's livelock check logs "Stream has not started processing"
    for a partition with a backlog whose inbound time is unknown or too old."""
    inbound = getattr(getattr(app, "monitor", None), "stream_inbound_time", None)
    if inbound is not None:
        now = monotonic()
        for tp in {m.tp for m in messages}:
            inbound[tp] = now


async def take(app: Any, feed: Feed, max_: int, within: float,
               ) -> AsyncIterator[list[FeedEvent]]:
    """Batches of up to `max_` records of `feed`, as FeedEvents: the first record, then what
    arrives within `within` seconds of it. Each record is tracked as in flight with the
    consumer until the batch body returns to this iterator, and then acknowledged. When the
    body raises, nothing is acknowledged (streamproc.agents.acks_only_on_success marks the
    records done so the consumer stops tracking them, and their offsets stay uncommitted)."""
    if max_ < 1:
        raise ValueError("max_ must be at least 1")
    loop = asyncio.get_running_loop()
    flow = app.flow_control
    while True:
        await feed.wait()
        deadline = loop.time() + within
        messages = feed.pop(max_)
        while len(messages) < max_:
            left = deadline - loop.time()
            if left <= 0 or not await feed.wait(left):
                break
            messages += feed.pop(max_ - len(messages))
        if not flow.is_active():
            await flow.acquire()  # a rebalance is on: its generation decides below
        consumer = app.consumer
        generation = app.consumer_generation_id
        messages = [m for m in messages if m.generation_id == generation]
        if not messages:
            continue
        unacked = consumer._unacked_messages  # noqa: SLF001 - faust's in-flight set
        for m in messages:
            unacked.add(m)
        _mark_inbound(app, messages)
        yield [FeedEvent(m) for m in messages]
        ack_many = getattr(consumer, "ack_many", None)  # streamproc.faust_fixes
        if ack_many is not None:
            ack_many(messages)
        else:
            ack = consumer.ack
            for m in messages:
                ack(m)
