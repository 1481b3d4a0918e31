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
from streamproc.faust_fixes import _hand_to_feeds, holding
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


async def test_a_full_feed_holds_its_records_not_the_other_feeds_records():
    """The records for a full feed wait (and so does the next fetch) until its agent took it
    below its limit; the other agents get theirs of the same fetch at once."""
    a, b = Feed("a", max_records=2), Feed("b", max_records=2)
    suspend_flow = asyncio.Event()
    a.append([Message(0, topic="a"), Message(1, topic="a")])
    assert a.full()
    hand = asyncio.ensure_future(_hand_to_feeds(
        {a: [Message(2, topic="a"), Message(3, topic="a")], b: [Message(0, topic="b")]},
        suspend_flow))
    await asyncio.sleep(0.01)
    assert len(b) == 1  # at once, while `a` is full
    assert len(a) == 2 and not hand.done()
    a.pop(1)  # room: the held records go in whole, past the limit
    assert await asyncio.wait_for(hand, 1) is True
    assert [m.offset for m in a.pop(10)] == [1, 2, 3] and [m.offset for m in b.pop(10)] == [0]


async def test_the_wait_for_room_gives_up_when_the_flow_is_suspended():
    a = Feed("a", max_records=1)
    a.append([Message(0, topic="a")])
    suspend_flow = asyncio.Event()
    hand = asyncio.ensure_future(_hand_to_feeds({a: [Message(1, topic="a")]}, suspend_flow))
    await asyncio.sleep(0.01)
    assert not hand.done()
    suspend_flow.set()  # a rebalance: a seek to the committed offsets follows
    assert await asyncio.wait_for(hand, 1) is False
    assert len(a) == 1  # record 1 is fetched again after the seek


async def test_the_fetch_loop_hands_nothing_while_a_rebalance_is_on():
    a, b = Feed("a"), Feed("b")
    suspend_flow = asyncio.Event()
    assert await _hand_to_feeds({a: [Message(0, topic="a")], b: [Message(0, topic="b")]},
                                suspend_flow)
    assert len(a) == len(b) == 1
    suspend_flow.set()
    assert not await _hand_to_feeds({a: [Message(1, topic="a")]}, suspend_flow)
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
