"""TableLedger: the delivery ledger over faust's partitioned RocksDB store, a batch at a time.
Each id lives in (and its changelog record goes to) the partition of the sink event that
carried it; the changelog records of a batch go out as one record batch per partition and
flush() waits for them. The state tables' batches use the same TableWriter (at the end)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import rocksdict
from faust.streams import current_event

from streamproc import changelog_acks
from streamproc.agents import BatchContext, set_current_event
from streamproc.delivery.table_ledger import TableLedger
from streamproc.state.table_writer import TableWriter

OFFSET_KEY = b"__faust\0offset__"
RETENTION = 3600.0
NOW = 1_800_000_000.0
TOPIC = "app-ledger-test-changelog"


class FakeStore:
    """faust's RocksDB store as the ledger uses it: one raw-mode rocksdict per partition."""

    offset_key = OFFSET_KEY
    use_rocksdict = True

    def __init__(self, root, partitions: int) -> None:
        self.root = root
        self._dbs: dict[int, rocksdict.Rdict] = {}
        for p in range(partitions):
            self._db_for_partition(p)

    def _db_for_partition(self, partition: int) -> rocksdict.Rdict:
        if partition not in self._dbs:
            self._dbs[partition] = rocksdict.Rdict(
                str(self.root / f"p{partition}"), options=rocksdict.Options(raw_mode=True))
        return self._dbs[partition]

    def persisted_offset(self, tp) -> int | None:
        raw = self._dbs[tp.partition].get(OFFSET_KEY)
        return None if raw is None else int(raw)

    def set_persisted_offset(self, tp, offset: int) -> None:
        assert tp.topic == TOPIC
        self._dbs[tp.partition].put(OFFSET_KEY, str(offset).encode())

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


class FakeTable:
    name = "ledger-test"

    def __init__(self, data) -> None:
        self.data = data
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: TOPIC)


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.records, self.closed = capacity, [], False

    def append(self, *, key, value, timestamp):
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """aiokafka's create_batch/send_batch: each partition's log gets the batches in order; the
    batch future resolves with the batch's base offset (or fails `fail` times first)."""

    def __init__(self, capacity: int = 1000, fail: int = 0) -> None:
        self.capacity, self.fail = capacity, fail
        self.log: dict[int, list[tuple[bytes, bytes]]] = {}
        self.batches: list[tuple[str, int, int]] = []  # (topic, partition, records)
        self.release = asyncio.Event()
        self.release.set()

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int):
        assert batch.closed, "a complete batch is closed, so the producer does not linger on it"
        fut = asyncio.get_running_loop().create_future()
        if self.fail:
            self.fail -= 1
            fut.set_exception(RuntimeError("broker said no"))
            return fut
        self.batches.append((topic, partition, len(batch.records)))
        log = self.log.setdefault(partition, [])
        base = len(log)
        log.extend(batch.records)

        async def ack() -> None:
            await self.release.wait()
            fut.set_result(SimpleNamespace(offset=base))

        asyncio.ensure_future(ack())
        return fut


class Event:
    """A sink event as faust hands it over (weak-referenceable, like faust's Event)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic="sink")


@pytest.fixture
def store(tmp_path):
    s = FakeStore(tmp_path, 3)
    yield s
    s.close()


async def no_sleep(_: float) -> None:
    return None


def ledger_for(store, producer: FakeProducer, now: float = NOW) -> TableLedger:
    async def get_producer():
        return producer

    return TableLedger(FakeTable(store), RETENTION, get_producer, clock=lambda: now,
                       sleep=no_sleep)


def stored(store, partition: int) -> dict[bytes, bytes]:
    return {k: v for k, v in store._dbs[partition].items() if k != OFFSET_KEY}


async def test_marks_go_to_the_partition_of_their_event_with_one_batch_per_partition(store):
    producer = FakeProducer()
    ledger = ledger_for(store, producer)
    ledger.begin({"a": Event(0), "b": Event(2), "c": Event(0), "d": Event(1)})
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
    ledger.begin({"a": Event(0), "b": Event(1)})
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
    ledger.begin({i: Event(0) for i in ids})
    assert ledger.seen_many(ids) == {"fresh"}
    assert ledger.seen("fresh") and not ledger.seen("absent")


async def test_a_mark_larger_than_a_record_batch_is_sent_as_several(store):
    producer = FakeProducer(capacity=3)
    ledger = ledger_for(store, producer)
    ids = [f"id-{n}" for n in range(8)]
    ledger.begin({i: Event(1) for i in ids})
    ledger.mark(ids, NOW)
    await ledger.flush()
    assert producer.batches == [(TOPIC, 1, 3), (TOPIC, 1, 3), (TOPIC, 1, 2)]
    assert [k for k, _ in producer.log[1]] == [i.encode() for i in ids]
    assert store._dbs[1].get(OFFSET_KEY) == b"7"


async def test_a_failed_changelog_write_is_retried(store):
    producer = FakeProducer(fail=2)
    ledger = ledger_for(store, producer)
    ledger.begin({"a": Event(0)})
    ledger.mark(["a"], NOW)
    await ledger.flush()
    assert producer.log == {0: [(b"a", repr(NOW).encode())]}


async def test_a_changelog_write_that_keeps_failing_fails_the_flush(store):
    producer = FakeProducer(fail=100)
    ledger = ledger_for(store, producer)
    ledger.begin({"a": Event(0)})
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
    ledger.begin({"a": Event(0)})
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
        event = current_event()
        assert event is not None, "table used outside of a stream"
        return self.partitions.setdefault(event.message.partition, {})

    def get(self, key: str):
        return self._partition().get(key)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._partition()[key] = value


async def test_without_a_rocksdb_store_the_table_api_is_used_per_partition():
    table = ApiTable()
    ledger = TableLedger(table, RETENTION, clock=lambda: NOW)
    events = {"a": Event(0), "b": Event(1), "c": Event(0)}
    ledger.begin(events)
    set_current_event(Event(2))
    ledger.mark(["a", "b", "c"], NOW - 1)
    value = repr(NOW - 1).encode()
    assert table.partitions == {0: {"a": value, "c": value}, 1: {"b": value}}
    assert ledger.seen_many(["a", "b", "c", "d"]) == {"a", "b", "c"}
    await ledger.flush()


# The state tables (known-users, contacts) write through the same TableWriter: an agent
# batch's changed keys go straight into their partition's store, with one changelog record
# batch per partition that changelog_acks.wait() waits for.


def state_runtime(table) -> SimpleNamespace:
    producer = table.producer

    async def get_producer():
        return producer

    writer = TableWriter(table, get_producer, sleep=no_sleep)
    return SimpleNamespace(tables={"users": table}, extras={"table_writers": {"users": writer}})


async def test_a_state_batch_writes_each_partition_store_and_one_changelog_batch_each(store):
    table = FakeTable(store)
    table.producer = FakeProducer()
    rt = state_runtime(table)
    ctx = BatchContext(rt)
    for partition, key, value in [(0, "a", b"a1"), (1, "b", b"b1"), (0, "c", b"c1"),
                                  (0, "a", b"a2")]:
        ctx.event = Event(partition)
        ctx.get("users", key)
        ctx.set("users", key, value)
    assert stored(store, 0) == {}  # nothing is written before the batch's end
    ctx.flush_tables()
    assert stored(store, 0) == {b"c": b"c1", b"a": b"a2"} and stored(store, 1) == {b"b": b"b1"}
    await changelog_acks.wait(rt)
    assert sorted(table.producer.batches) == [(TOPIC, 0, 2), (TOPIC, 1, 1)]
    assert table.producer.log == {0: [(b"c", b"c1"), (b"a", b"a2")], 1: [(b"b", b"b1")]}
    assert [store._dbs[p].get(OFFSET_KEY) for p in range(3)] == [b"1", b"0", None]
    # a later batch reads each key from the partition of the event that reads it
    reader = BatchContext(rt)
    reader.event = Event(0)
    assert reader.get("users", "a") == b"a2" and reader.get("users", "b") is None


async def test_a_failed_state_changelog_write_fails_the_batch(store):
    table = FakeTable(store)
    table.producer = FakeProducer(fail=100)
    rt = state_runtime(table)
    ctx = BatchContext(rt)
    ctx.event = Event(2)
    ctx.set("users", "a", b"a1")
    ctx.flush_tables()
    with pytest.raises(RuntimeError, match="broker said no"):
        await changelog_acks.wait(rt)


def test_table_writer_puts_a_batch_with_tombstones_in_one_write(store):
    """Several entries go in as one RocksDB write batch; None deletes the key."""
    writer = TableWriter(FakeTable(store), None)
    store._dbs[0].put(b"gone", b"old")
    writer.put(0, [(b"a", b"1"), (b"gone", None), (b"b", b"2"), (b"a", b"3")])
    assert stored(store, 0) == {b"a": b"3", b"b": b"2"}
    writer.put(0, [(b"b", None)])  # a single entry
    assert stored(store, 0) == {b"a": b"3"}
