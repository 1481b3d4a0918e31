"""The checkpoint (streamproc/runtime/checkpoint.py) and the agent batches that move it
(runtime/feeds.py): the invariant behind every commit, without a broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streamproc.runtime.checkpoint import MAX_BACKOFF_S, Checkpoint
from streamproc.runtime.feeds import Batch, Chunk, Feed, round_robin, take

from faust.types import TP

A, B = TP("raw", 0), TP("raw", 1)


def msg(tp, offset):
    return SimpleNamespace(tp=tp, topic=tp[0], partition=tp[1], offset=offset)


def test_a_failed_batch_rewinds_and_later_reports_of_its_epoch_change_nothing():
    cp = Checkpoint()
    cp.assign({A: 0, B: 5})
    ea = cp.epoch(A)
    cp.handed(A, ea, 4)
    cp.done(A, ea, 1, 2)  # batch 1: offsets 0, 1
    assert cp.rewind(A, ea) == 0.5  # batch 2 (2, 3) failed: back to 2, after 0.5 s
    assert cp.rewinds == {A: 2} and cp.epoch(A) != ea
    cp.done(A, ea, 3, 2)  # a batch taken before the rewind finishing late: ignored
    cp.fetched_to(A, ea, 4)
    assert cp.next(A) == 2 and cp.rewind(A, ea) is None
    assert cp.committable({A: 0, B: None}) == {A: 2, B: 5}
    assert cp.committable({A: 2, B: 5}) == {}  # only what moved past the committed offset
    assert cp.committable({A: 0}, tps=[B]) == {B: 5}
    assert cp.committable({}, tps={"raw"}) == {A: 2, B: 5}  # faust passes topic names too


def test_backoff_grows_per_failure_in_a_row_and_resets_when_a_batch_succeeds():
    cp = Checkpoint()
    cp.assign({A: 0})
    backoffs = []
    for _ in range(9):
        backoffs.append(cp.rewind(A, cp.epoch(A)))
    assert backoffs[:4] == [0.5, 1.0, 2.0, 4.0] and backoffs[-1] == MAX_BACKOFF_S
    e = cp.epoch(A)
    cp.handed(A, e, 1)
    cp.done(A, e, 0, 1)
    assert cp.next(A) == 1 and cp.rewind(A, e) == 0.5


def test_revoke_and_reassign_start_a_new_epoch():
    cp = Checkpoint()
    cp.assign({A: 3})
    e = cp.epoch(A)
    cp.handed(A, e, 1)
    cp.revoke([A])
    assert A not in cp and not cp.handed(A, e, 1)
    cp.done(A, e, 3, 1)
    cp.assign({A: 3})
    cp.done(A, e, 3, 1)  # the old epoch's batch ends after the partition came back
    assert cp.next(A) == 3 and cp.committable({}) == {A: 3}


def test_feed_pops_whole_and_split_chunks_in_order():
    feed = Feed("raw", max_records=4)
    feed.append(Chunk(A, 1, [msg(A, 0), msg(A, 1), msg(A, 2)]))
    feed.append(Chunk(B, 1, [msg(B, 0), msg(B, 1)]))
    assert feed.full() and len(feed) == 5
    first = feed.pop(4)
    assert [(c.tp, [m.offset for m in c.messages]) for c in first] == [(A, [0, 1, 2]), (B, [0])]
    assert [(c.tp, [m.offset for m in c.messages]) for c in feed.pop(4)] == [(B, [1])]
    assert round_robin([[1, 2, 3], [4]]) == [1, 4, 2, 3]


def test_a_batch_keeps_each_partitions_order_across_its_chunks():
    """Two chunks of one partition in a batch (popped before and within its wait) were
    interleaved as two lists: offset 2 of A came before offset 1."""
    cp = Checkpoint()
    cp.assign({A: 0, B: 0})
    ea, eb = cp.epoch(A), cp.epoch(B)
    chunks = [Chunk(A, ea, [msg(A, 0), msg(A, 1)]), Chunk(B, eb, [msg(B, 0)]),
              Chunk(A, ea, [msg(A, 2), msg(A, 3)])]
    events = Batch(FakeConsumer(cp), chunks).events
    got = [(e.message.partition, e.message.offset) for e in events]
    for tp in (A, B):
        offsets = [o for p, o in got if p == tp.partition]
        assert offsets == sorted(offsets)
    assert len(got) == 5


def test_a_batch_groups_its_chunks_in_one_pass():
    """Grouping a batch's chunks by partition compared every chunk's partition with every
    other's (2,000 one-record chunks: about 0.15 s a batch); each fetch makes its own (equal)
    partition object, so the comparisons are counted on equal, distinct ones."""
    calls = [0]

    class CountedTP(tuple):
        def __eq__(self, other):
            calls[0] += 1
            return tuple.__eq__(self, other)

        __hash__ = tuple.__hash__

        @property
        def partition(self):
            return self[1]

    chunks = [Chunk(CountedTP(("raw", i % 2)), 1, [SimpleNamespace(offset=i, partition=i % 2)])
              for i in range(400)]
    events = Batch(None, chunks).events
    assert [e.message.offset for e in events][:4] == [0, 1, 2, 3] and len(events) == 400
    assert calls[0] <= 2 * len(chunks), calls[0]


class FakeConsumer:
    def __init__(self, cp):
        self.checkpoint, self.rewound = cp, []

    def rewind(self, tp, epoch, hold_s=None):
        self.rewound.append((tp, epoch) if hold_s is None else (tp, epoch, hold_s))
        self.checkpoint.rewind(tp, epoch, failed=hold_s is None)


def test_a_batch_moves_the_checkpoint_only_when_its_body_returns():
    cp = Checkpoint()
    cp.assign({A: 0, B: 0})
    consumer = FakeConsumer(cp)
    ea, eb = cp.epoch(A), cp.epoch(B)
    cp.handed(A, ea, 2)
    cp.handed(B, eb, 1)
    chunks = [Chunk(A, ea, [msg(A, 0), msg(A, 1)]), Chunk(B, eb, [msg(B, 0)])]
    batch = Batch(consumer, chunks)
    assert [(e.message.tp, e.message.offset) for e in batch.events] == [(A, 0), (B, 0), (A, 1)]
    with batch as events:
        assert len(events) == 3
        raise RuntimeError("the broker refused an output")  # swallowed: logged, rewound
    assert sorted(consumer.rewound) == sorted([(A, ea), (B, eb)])
    assert cp.next(A) == 0 and cp.next(B) == 0 and cp.rewinds == {A: 0, B: 0}
    ea, eb = cp.epoch(A), cp.epoch(B)
    cp.handed(A, ea, 2)
    with Batch(consumer, [Chunk(A, ea, [msg(A, 0), msg(A, 1)])]):
        pass
    assert cp.next(A) == 2
    with pytest.raises(asyncio.CancelledError):  # shutdown is not swallowed
        with Batch(consumer, [Chunk(B, eb, [msg(B, 0)])]):
            raise asyncio.CancelledError()


class Held(Exception):
    hold_s = 7.5


def test_a_held_batch_goes_back_to_its_checkpoint_without_counting_as_a_failure(caplog):
    """A batch whose destination is paused (issue 14) is read again after its hold, from the
    checkpoint, and is neither logged nor counted as a failing batch (batch_retries)."""
    cp = Checkpoint()
    cp.assign({A: 0})
    consumer = FakeConsumer(cp)
    e = cp.epoch(A)
    cp.handed(A, e, 2)
    with Batch(consumer, [Chunk(A, e, [msg(A, 0), msg(A, 1)])]):
        raise Held()
    assert consumer.rewound == [(A, e, 7.5)]
    assert cp.next(A) == 0 and cp.rewinds == {A: 0} and cp.epoch(A) != e
    assert cp.failing() == {} and "failed" not in caplog.text
    e = cp.epoch(A)
    cp.rewind(A, e)  # a real failure afterwards starts the backoff at its first step
    assert cp.failing() == {A: 1}


def test_take_leaves_out_records_handed_before_their_partition_was_sought():
    async def run():
        cp = Checkpoint()
        cp.assign({A: 0, B: 0})
        stale = cp.epoch(A)
        cp.rewind(A, stale)
        flow = SimpleNamespace(is_active=lambda: True)
        app = SimpleNamespace(flow_control=flow, consumer=FakeConsumer(cp),
                              monitor=SimpleNamespace(stream_inbound_time={}))
        feed = Feed("raw")
        feed.append(Chunk(A, stale, [msg(A, 0)]))
        feed.append(Chunk(B, cp.epoch(B), [msg(B, 0)]))
        batches = take(app, feed, 10, 0.01)
        batch = await batches.__anext__()
        await batches.aclose()
        return [e.message.tp for e in batch.events], app.monitor.stream_inbound_time

    tps, inbound = asyncio.run(run())
    assert tps == [B] and list(inbound) == [B]
