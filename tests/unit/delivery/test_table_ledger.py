"""TableLedger: the delivery ledger over faust's partitioned RocksDB store, a batch at a time.
Each id lives in (and its changelog record goes to) the partition of the sink event that
carried it; the changelog records of a batch go out as one record batch per partition and
flush() waits for them. The state tables' batches use the same runtime.TableWriter (at the
end)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.streams import current_event
from table_fakes import (OFFSET_KEY, TOPIC, FakeProducer, FakeStore, FakeTable, event,
                         no_sleep, stored)

from streamproc import runtime
from streamproc.runtime import TableWriter, set_current_event
from streamproc.worker.agents import BatchContext
from streamproc.worker.table_ledger import TableLedger

RETENTION = 3600.0
NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path):
    s = FakeStore(tmp_path, 3)
    yield s
    s.close()


def ledger_for(store, producer: FakeProducer, now: float = NOW) -> TableLedger:
    return TableLedger(FakeTable(store), RETENTION, producer.get, clock=lambda: now,
                       sleep=no_sleep)


def test_the_fake_store_is_faust_rocksdb_store_for_the_runtime(store):
    """The direct path is taken only for faust's RocksDB store (isinstance)."""
    table = FakeTable(store)
    assert runtime.partition_dbs(table) is store._dbs
    assert TableWriter(table, FakeProducer().get).direct()
    assert not TableWriter(table, None).direct()  # no producer: no changelog records
    assert runtime.partition_dbs(FakeTable(SimpleNamespace(_dbs={}))) is None


async def test_marks_go_to_the_partition_of_their_event_with_one_batch_per_partition(store):
    producer = FakeProducer()
    ledger = ledger_for(store, producer)
    ledger.begin({"a": event(0), "b": event(2), "c": event(0), "d": event(1)})
    ledger.mark(["a", "b", "c", "d"], NOW - 5)
    value = repr(NOW - 5).encode()
    # the local store has them at once (a re-read record is skipped even before the flush)
    assert stored(store, 0) == {b"a": value, b"c": value}
    assert stored(store, 1) == {b"d": value} and stored(store, 2) == {b"b": value}
    await ledger.flush()
    assert sorted(producer.batches) == [(TOPIC, 0, 2), (TOPIC, 1, 1), (TOPIC, 2, 1)]
    assert producer.log == {0: [(b"a", value), (b"c", value)], 1: [(b"d", value)],
                            2: [(b"b", value)]}
    # as faust after its own changelog writes: the offset the local store is complete up to
    assert [store._dbs[p].get(OFFSET_KEY) for p in range(3)] == [b"1", b"0", b"0"]


async def test_flush_waits_until_the_broker_acknowledged_every_batch(store):
    producer = FakeProducer()
    producer.release.clear()
    ledger = ledger_for(store, producer)
    ledger.begin({"a": event(0), "b": event(1)})
    ledger.mark(["a", "b"], NOW)
    flush = asyncio.ensure_future(ledger.flush())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not flush.done()
    producer.release.set()
    await flush
    assert ledger.pending == []


async def test_seen_many_reads_each_id_in_its_own_partition_within_retention(store):
    store._dbs[0].put(b"fresh", repr(NOW - 10).encode())
    store._dbs[0].put(b"old", repr(NOW - RETENTION).encode())  # the boundary is exclusive
    store._dbs[0].put(b"junk", b"not-a-number")
    store._dbs[1].put(b"elsewhere", repr(NOW - 10).encode())  # not the partition of its event
    ledger = ledger_for(store, FakeProducer())
    ids = ["fresh", "old", "junk", "elsewhere", "absent"]
    ledger.begin({i: event(0) for i in ids})
    assert ledger.seen_many(ids) == {"fresh"}
    assert ledger.seen("fresh") and not ledger.seen("absent")


async def test_a_mark_larger_than_a_record_batch_is_sent_as_several(store):
    producer = FakeProducer(capacity=3)
    ledger = ledger_for(store, producer)
    ids = [f"id-{n}" for n in range(8)]
    ledger.begin({i: event(1) for i in ids})
    ledger.mark(ids, NOW)
    await ledger.flush()
    assert producer.batches == [(TOPIC, 1, 3), (TOPIC, 1, 3), (TOPIC, 1, 2)]
    assert [k for k, _ in producer.log[1]] == [i.encode() for i in ids]
    assert store._dbs[1].get(OFFSET_KEY) == b"7"


async def test_a_failed_changelog_write_is_retried(store):
    producer = FakeProducer(fail=2)
    ledger = ledger_for(store, producer)
    ledger.begin({"a": event(0)})
    ledger.mark(["a"], NOW)
    await ledger.flush()
    assert producer.log == {0: [(b"a", repr(NOW).encode())]}


async def test_a_changelog_write_that_keeps_failing_fails_the_flush(store):
    producer = FakeProducer(fail=100)
    ledger = ledger_for(store, producer)
    ledger.begin({"a": event(0)})
    ledger.mark(["a"], NOW)
    with pytest.raises(RuntimeError, match="broker said no"):
        await ledger.flush()
    ledger.end()
    await ledger.flush()  # nothing left over for the next batch
    assert ledger.events == {}


async def test_the_persisted_offset_never_goes_back(store):
    store._dbs[0].put(OFFSET_KEY, b"50")
    producer = FakeProducer()
    ledger = ledger_for(store, producer)
    ledger.begin({"a": event(0)})
    ledger.mark(["a"], NOW)
    await ledger.flush()
    assert store._dbs[0].get(OFFSET_KEY) == b"50"


class ApiTable:
    """A faust table without a partitioned RocksDB store: reads and writes go to the partition
    of faust's current event (the fallback path)."""

    name = "ledger-test"

    def __init__(self) -> None:
        self.data = SimpleNamespace()
        self.partitions: dict[int, dict[str, bytes]] = {}

    def _partition(self) -> dict[str, bytes]:
        ev = current_event()
        assert ev is not None, "table used outside of a stream"
        return self.partitions.setdefault(ev.message.partition, {})

    def get(self, key: str):
        return self._partition().get(key)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._partition()[key] = value


async def test_without_a_rocksdb_store_the_table_api_is_used_per_partition():
    table = ApiTable()
    ledger = TableLedger(table, RETENTION, clock=lambda: NOW)
    events = {"a": event(0), "b": event(1), "c": event(0)}
    ledger.begin(events)
    set_current_event(event(2))
    ledger.mark(["a", "b", "c"], NOW - 1)
    value = repr(NOW - 1).encode()
    assert table.partitions == {0: {"a": value, "c": value}, 1: {"b": value}}
    assert ledger.seen_many(["a", "b", "c", "d"]) == {"a", "b", "c"}
    await ledger.flush()


# The state tables (known-users, contacts) write through the same TableWriter: an agent
# batch's changed keys go out as one changelog record batch per partition at the batch's end
# (flush_tables() returns them staged); the agent awaits them with its outputs, and only then
# applies them to the partitions' stores, so a failed batch is read again against the state
# it started from.


def state_runtime(table) -> SimpleNamespace:
    writer = TableWriter(table, table.producer.get, sleep=no_sleep)
    return SimpleNamespace(tables={"users": table}, table_writers={"users": writer}, outcomes=None)


async def test_a_state_batch_writes_each_partition_store_and_one_changelog_batch_each(store):
    table = FakeTable(store)
    table.producer = FakeProducer()
    rt = state_runtime(table)
    ctx = BatchContext(rt)
    for partition, key, value in [(0, "a", b"a1"), (1, "b", b"b1"), (0, "c", b"c1"),
                                  (0, "a", b"a2")]:
        ctx.event = event(partition)
        ctx.get("users", key)
        ctx.set("users", key, value)
    assert stored(store, 0) == {}  # nothing is written before the batch's end
    staged = ctx.flush_tables()
    assert len(staged) == 2  # one changelog send per table partition
    await runtime.wait_all(s.sent for s in staged)
    assert stored(store, 0) == {} and stored(store, 1) == {}  # not before apply()
    for s in staged:
        s.apply()
    assert stored(store, 0) == {b"c": b"c1", b"a": b"a2"} and stored(store, 1) == {b"b": b"b1"}
    assert sorted(table.producer.batches) == [(TOPIC, 0, 2), (TOPIC, 1, 1)]
    assert table.producer.log == {0: [(b"c", b"c1"), (b"a", b"a2")], 1: [(b"b", b"b1")]}
    assert [store._dbs[p].get(OFFSET_KEY) for p in range(3)] == [b"1", b"0", None]
    # a later batch reads each key from the partition of the event that reads it
    reader = BatchContext(rt)
    reader.event = event(0)
    assert reader.get("users", "a") == b"a2" and reader.get("users", "b") is None
    assert reader.flush_tables() == []  # nothing changed: nothing to wait for


async def test_a_failed_state_changelog_write_fails_the_batch(store):
    table = FakeTable(store)
    table.producer = FakeProducer(fail=100)
    rt = state_runtime(table)
    ctx = BatchContext(rt)
    ctx.event = event(2)
    ctx.set("users", "a", b"a1")
    staged = ctx.flush_tables()
    with pytest.raises(RuntimeError, match="broker said no"):
        await runtime.wait_all(s.sent for s in staged)
    assert stored(store, 2) == {}  # the batch is read again against the state it started from


async def test_a_failed_state_batch_ends_only_once_every_send_ended(store):
    """wait_all raises the first failure, but only after the other sends of the batch ended
    (the batch is read again from its checkpoint: no send of it may still be on its way)."""
    table = FakeTable(store)
    table.producer = FakeProducer(fail=4)  # every attempt of the first partition's send
    table.producer.release.clear()  # the second partition's send is not acknowledged yet
    rt = state_runtime(table)
    ctx = BatchContext(rt)
    for partition, key in [(0, "a"), (1, "b")]:
        ctx.event = event(partition)
        ctx.set("users", key, b"v")
    first, second = sends = [s.sent for s in ctx.flush_tables()]
    waiting = asyncio.ensure_future(runtime.wait_all(sends))
    for _ in range(20):
        await asyncio.sleep(0)
    assert first.done() and not second.done()
    assert not waiting.done()
    table.producer.release.set()
    with pytest.raises(RuntimeError, match="broker said no"):
        await waiting
    assert second.done() and table.producer.log == {1: [(b"b", b"v")]}


def test_table_writer_puts_a_batch_with_tombstones_in_one_write(store):
    """Several entries go in as one RocksDB write batch; None deletes the key."""
    writer = TableWriter(FakeTable(store), None)
    store._dbs[0].put(b"gone", b"old")
    writer.put(0, [(b"a", b"1"), (b"gone", None), (b"b", b"2"), (b"a", b"3")])
    assert stored(store, 0) == {b"a": b"3", b"b": b"2"}
    writer.put(0, [(b"b", None)])  # a single entry
    assert stored(store, 0) == {b"a": b"3"}


async def test_table_writer_write_puts_now_and_sends_tombstones_too(store):
    producer = FakeProducer()
    producer.release.clear()
    writer = TableWriter(FakeTable(store), producer.get, sleep=no_sleep)
    store._dbs[2].put(b"gone", b"old")
    send = writer.write(2, [(b"new", b"1"), (b"gone", None)])
    assert stored(store, 2) == {b"new": b"1"}  # in the store before the send is acknowledged
    for _ in range(10):
        await asyncio.sleep(0)
    assert not send.done()
    producer.release.set()
    await send
    assert producer.log == {2: [(b"new", b"1"), (b"gone", None)]}
    assert store._dbs[2].get(OFFSET_KEY) == b"1"
    assert writer.get_many(2, [b"new", b"gone"]) == [b"1", None]


async def test_a_state_batch_whose_outputs_fail_waits_for_its_changelog_sends(store):
    """A batch retried from its checkpoint must not have an earlier attempt's changelog
    record land after the retry's (the changelog would go back to the older value)."""
    from streamproc.worker.agents import _process_state_batch

    table = FakeTable(store)
    table.producer = FakeProducer()
    table.producer.release.clear()  # the changelog send is on its way
    rt = state_runtime(table)

    async def send_all(out):
        raise RuntimeError("output refused")

    rt.output = SimpleNamespace(send_all=send_all)

    def handle(m, now, batch):
        batch.set("users", "a", b"v")
        return [("out", b"a", b"x")]

    task = asyncio.ensure_future(_process_state_batch(rt, "users", [event(0)], handle))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()  # the failed batch waits for its send to end
    table.producer.release.set()
    with pytest.raises(RuntimeError, match="output refused"):
        await task
    assert stored(store, 0) == {}  # and its state change is not applied
