"""Feeds: the fetch loop hands each agent its topic's records a fetched batch at a time; the
agent takes batches, tracks them as in flight and acknowledges them only after its body
returned. Records of an earlier consumer generation are dropped (a seek follows every
rebalance, they are fetched again)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streamproc import feeds, unstick
from streamproc.agents import acks_only_on_success
from streamproc.faust_fixes import _hand_to_feeds, holding, pause_fetching, resume_fetching
from streamproc.feeds import Feed, feed_for, in_feed, take


class TP(tuple):
    def __new__(cls, topic: str, partition: int):
        return super().__new__(cls, (topic, partition))

    @property
    def topic(self) -> str:
        return self[0]


class Message:
    def __init__(self, offset: int, partition: int = 0, generation: int = 1,
                 topic: str = "t") -> None:
        self.offset, self.partition, self.topic = offset, partition, topic
        self.tp = TP(topic, partition)
        self.generation_id = generation
        self.acked = False

    def __repr__(self) -> str:
        return f"M({self.offset})"


class Flow:
    def __init__(self) -> None:
        self.resumed = asyncio.Event()
        self.resumed.set()

    def is_active(self) -> bool:
        return self.resumed.is_set()

    async def acquire(self) -> None:
        await self.resumed.wait()


class Consumer:
    def __init__(self) -> None:
        self._unacked_messages: set = set()
        self.acked: list[int] = []

    def ack(self, message: Message) -> bool:
        message.acked = True
        self._unacked_messages.discard(message)
        self.acked.append(message.offset)
        return True


def app_with(generation: int = 1) -> SimpleNamespace:
    return SimpleNamespace(flow_control=Flow(), consumer=Consumer(),
                           consumer_generation_id=generation)


def offsets(batch) -> list[int]:
    return [ev.message.offset for ev in batch]


async def test_records_come_out_in_fetch_order_split_at_the_batch_size():
    feed = Feed("t", max_records=100)
    feed.append([Message(i) for i in range(3)])
    feed.append([Message(i) for i in range(3, 7)])
    assert [m.offset for m in feed.pop(5)] == [0, 1, 2, 3, 4]
    assert len(feed) == 2
    assert [m.offset for m in feed.pop(5)] == [5, 6]
    assert feed.pop(5) == [] and len(feed) == 0


class FetchingConsumer:
    """faust's consumer as pause_fetching/resume_fetching use it."""

    def __init__(self, assigned: set) -> None:
        from faust.types import TP as FaustTP

        self.assigned = set(assigned)
        self._active_partitions = {FaustTP(*tp) for tp in assigned}
        self._buffered_partitions: set = set()
        self._paused_partitions: set = set()

    def _get_active_partitions(self) -> set:
        from faust.types import TP as FaustTP

        # as faust: its sets hold only its own TP type
        assert all(isinstance(x, FaustTP) for x in self._active_partitions)
        return self._active_partitions

    def assignment(self) -> set:
        return self.assigned


async def test_a_full_feed_pauses_the_partitions_it_got_until_the_agent_takes_it_to_half():
    a, b = Feed("a", max_records=4), Feed("b", max_records=4)
    a0, a1, a2, b0 = TP("a", 0), TP("a", 1), TP("a", 2), TP("b", 0)
    consumer = FetchingConsumer({a0, a1, a2, b0})
    suspend_flow = asyncio.Event()
    _hand_to_feeds(consumer, {a: [Message(0, topic="a"), Message(0, 1, topic="a")],
                              b: [Message(0, topic="b")]}, suspend_flow)
    assert consumer._active_partitions == {a0, a1, a2, b0}  # not full yet
    # a fetched batch is appended whole, past the limit: the fetch loop never waits, so the
    # other topics' records of the same fetch reach their agents
    _hand_to_feeds(consumer, {a: [Message(o, 1, topic="a") for o in (1, 2, 3)],
                              b: [Message(1, topic="b")]}, suspend_flow)
    assert len(a) == 5 and len(b) == 2
    assert consumer._active_partitions == {a0, a2, b0}  # a1's records filled `a`
    assert consumer._buffered_partitions == {a1} and a.paused == {a1}
    _hand_to_feeds(consumer, {a: [Message(0, 2, topic="a")]}, suspend_flow)
    assert consumer._active_partitions == {a0, b0} and a.paused == {a1, a2}
    a.pop(3)
    assert len(a) == 3 and consumer._active_partitions == {a0, b0}  # above half: still paused
    consumer.assigned.discard(a2)  # a rebalance took a2 away meanwhile
    a.pop(1)
    assert len(a) == 2 and a.paused == set()
    assert consumer._active_partitions == {a0, a1, b0}  # a2 is not fetched: not assigned
    assert consumer._buffered_partitions == set()
    # a partition faust paused itself (table recovery) stays paused
    pause_fetching(consumer, {b0})
    consumer._paused_partitions.add(b0)
    resume_fetching(consumer, {b0})
    assert consumer._active_partitions == {a0, a1}


async def test_the_fetch_loop_hands_nothing_while_a_rebalance_is_on():
    a, b = Feed("a"), Feed("b")
    consumer = FetchingConsumer(set())
    suspend_flow = asyncio.Event()
    _hand_to_feeds(consumer, {a: [Message(0, topic="a")], b: [Message(0, topic="b")]},
                   suspend_flow)
    assert len(a) == len(b) == 1
    suspend_flow.set()
    _hand_to_feeds(consumer, {a: [Message(1, topic="a")]}, suspend_flow)
    assert len(a) == 1


async def test_take_batches_up_to_max_and_waits_within_for_more():
    app = app_with()
    feed = Feed("t")
    feed.append([Message(i) for i in range(5)])
    batches = take(app, feed, 3, 0.05)
    assert offsets(await batches.__anext__()) == [0, 1, 2]
    second = asyncio.ensure_future(batches.__anext__())
    await asyncio.sleep(0.01)
    feed.append([Message(5)])  # arrives within the window: same batch
    assert offsets(await asyncio.wait_for(second, 1)) == [3, 4, 5]
    await batches.aclose()


async def test_records_are_in_flight_during_the_body_and_acked_after_it():
    app = app_with()
    app.monitor = SimpleNamespace(stream_inbound_time={})
    feed = Feed("t")
    feed.append([Message(0), Message(1, partition=2)])
    batches = take(app, feed, 10, 0.0)
    batch = await batches.__anext__()
    assert {m.offset for m in app.consumer._unacked_messages} == {0, 1}
    # faust's livelock check sees the partitions processed (else: "has not started")
    assert set(app.monitor.stream_inbound_time) == {TP("t", 0), TP("t", 2)}
    assert app.consumer.acked == []
    feed.append([Message(2)])
    assert offsets(await batches.__anext__()) == [2]  # the body of the first one returned
    assert app.consumer.acked == [0, 1]
    assert offsets(batch) == [0, 1]
    await batches.aclose()


async def test_a_failed_body_acks_nothing_and_stops_tracking_the_records():
    app = app_with()
    feed = Feed("t")
    feed.append([Message(0), Message(1)])
    with pytest.raises(RuntimeError):
        async for batch in take(app, feed, 10, 0.0):
            with acks_only_on_success(batch):
                raise RuntimeError("batch failed")
    assert app.consumer.acked == []
    assert all(m.acked for m in app.consumer._unacked_messages)  # done, not committed


async def test_records_of_an_earlier_generation_are_dropped_after_the_rebalance():
    app = app_with(generation=1)
    feed = Feed("t")
    feed.append([Message(0, generation=1), Message(1, generation=1)])
    app.flow_control.resumed.clear()  # a rebalance is on
    batches = take(app, feed, 10, 0.0)
    first = asyncio.ensure_future(batches.__anext__())
    await asyncio.sleep(0.01)
    assert not first.done()  # nothing is handed while the flow is suspended
    app.consumer_generation_id = 2
    feed.append([Message(0, generation=2)])  # re-fetched after the seek
    app.flow_control.resumed.set()
    batch = await asyncio.wait_for(first, 1)
    assert [(ev.message.offset, ev.message.generation_id) for ev in batch] == [(0, 2)]
    await batches.aclose()


async def test_unstick_sees_records_in_a_feed_or_held_by_the_fetch_loop_as_in_flight():
    consumer = SimpleNamespace(_unacked_messages=set())
    app = SimpleNamespace(consumer=consumer, topics=SimpleNamespace(_tp_index={}))
    feed = feed_for(app, "t")
    tp0, tp1 = TP("t", 0), TP("t", 1)
    assert not unstick.in_flight(app, tp0)
    feed.append([Message(5, partition=0)])
    assert in_feed(app, tp0) and not in_feed(app, tp1)
    assert unstick.in_flight(app, tp0) and not unstick.in_flight(app, tp1)
    feed.pop(10)
    consumer.__dict__["_streamproc_holding"] = {feed: [Message(6, partition=1)]}
    assert holding(consumer, tp1) and unstick.in_flight(app, tp1)
    assert not unstick.in_flight(app, tp0)
    assert feeds.feeds(app) == {"t": feed}


def test_a_fetched_batch_is_handed_to_a_feed_round_robin_over_its_partitions():
    """As faust's getmany: one record of each partition in turn, each partition's order kept."""
    from streamproc.faust_fixes import round_robin

    p0 = [Message(o, partition=0) for o in range(4)]
    p1 = [Message(o, partition=1) for o in (10, 11)]
    p2 = [Message(o, partition=2) for o in (20, 21, 22)]
    assert [m.offset for m in round_robin([p0, p1, p2])] == [0, 10, 20, 1, 11, 21, 2, 22, 3]
    assert round_robin([p0]) == p0 and round_robin([p0]) is not p0
