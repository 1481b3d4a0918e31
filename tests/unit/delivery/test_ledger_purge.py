"""LedgerPurger: expired ledger entries are deleted partition by partition, each tombstone
written through the ledger's TableWriter (store and changelog) to the partition the entry lives
in, within bounds per call, resuming where it stopped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from table_fakes import OFFSET_KEY, TOPIC, FakeProducer, FakeStore, FakeTable, event, no_sleep

from streamproc.runtime import TableWriter
from streamproc.worker.deliver_agents import LedgerPurger

RETENTION = 3600.0
NOW = 1_800_000_000.0


def put(store: FakeStore, partition: int, key: str, at: float | bytes) -> None:
    value = at if isinstance(at, bytes) else repr(float(at)).encode()
    store._dbs[partition][key.encode()] = value


def keys(store: FakeStore, partition: int) -> set[bytes]:
    return set(store._dbs[partition].keys()) - {OFFSET_KEY}


def tombstones(producer: FakeProducer) -> list[tuple[int, bytes]]:
    """(changelog partition, key) of every record sent; all of them must be tombstones."""
    out = []
    for partition, records in producer.log.items():
        for key, value in records:
            assert value is None, f"the purge sent a value for {key!r}"
            out.append((partition, key))
    return out


def writer_for(store, producer: FakeProducer | None = None) -> TableWriter:
    producer = producer or FakeProducer()
    return TableWriter(FakeTable(store), producer.get, sleep=no_sleep)


@pytest.fixture
def store(tmp_path):
    s = FakeStore(tmp_path, 3)
    yield s
    s.close()


async def test_expired_entries_are_deleted_with_tombstones_to_their_own_partition(store):
    for p in range(3):
        put(store, p, f"old-{p}", NOW - RETENTION - 1)
        put(store, p, f"new-{p}", NOW - 10)
        store._dbs[p][OFFSET_KEY] = b"42"
    producer = FakeProducer()
    purger = LedgerPurger(writer_for(store, producer), RETENTION)
    deleted = await purger.purge(range(3), now=NOW)
    assert deleted == 3 == purger.deleted
    assert sorted(tombstones(producer)) == [(0, b"old-0"), (1, b"old-1"), (2, b"old-2")]
    assert sorted(producer.batches) == [(TOPIC, p, 1) for p in range(3)]
    for p in range(3):
        assert keys(store, p) == {f"new-{p}".encode()}
        # faust's changelog offset is not an entry (it is never purged); the tombstones' own
        # changelog offset (0) is below it, so it stays
        assert store._dbs[p][OFFSET_KEY] == b"42"


async def test_the_tombstones_changelog_offset_is_recorded_as_faust_does(store):
    put(store, 1, "old", NOW - RETENTION - 1)
    producer = FakeProducer()
    producer.log[1] = [(b"earlier", b"x")] * 100  # the changelog partition holds 0..99
    await LedgerPurger(writer_for(store, producer), RETENTION).purge([1], now=NOW)
    assert producer.log[1][100:] == [(b"old", None)]
    assert store._dbs[1][OFFSET_KEY] == b"100"


async def test_the_purge_returns_once_its_tombstones_are_on_the_broker(store):
    put(store, 0, "old", NOW - RETENTION - 1)
    producer = FakeProducer()
    producer.release.clear()
    purge = asyncio.ensure_future(LedgerPurger(writer_for(store, producer), RETENTION)
                                  .purge([0], now=NOW))
    for _ in range(10):
        await asyncio.sleep(0)
    assert keys(store, 0) == set() and not purge.done()
    producer.release.set()
    assert await purge == 1


async def test_only_the_given_partitions_are_touched(store):
    for p in range(3):
        put(store, p, f"old-{p}", NOW - RETENTION - 1)
    producer = FakeProducer()
    await LedgerPurger(writer_for(store, producer), RETENTION).purge({1}, now=NOW)
    assert tombstones(producer) == [(1, b"old-1")]
    assert keys(store, 0) == {b"old-0"} and keys(store, 2) == {b"old-2"}
    assert await LedgerPurger(writer_for(store), RETENTION).purge([], now=NOW) == 0


async def test_unreadable_values_are_purged_and_the_boundary_is_exclusive(store):
    put(store, 0, "garbage", b"not-a-number")
    put(store, 0, "exactly", NOW - RETENTION)  # as old as the window: no longer "seen"
    put(store, 0, "inside", NOW - RETENTION + 1)
    producer = FakeProducer()
    await LedgerPurger(writer_for(store, producer), RETENTION).purge([0], now=NOW)
    assert keys(store, 0) == {b"inside"}
    assert sorted(tombstones(producer)) == [(0, b"exactly"), (0, b"garbage")]


async def test_each_call_is_bounded_and_resumes_where_it_stopped(store):
    for n in range(50):
        put(store, 0, f"k{n:03d}", NOW - RETENTION - 1 if n % 2 else NOW)
    producer = FakeProducer()
    purger = LedgerPurger(writer_for(store, producer), RETENTION, scan_keys=10,
                          max_deletes=1000)
    counts = []
    while len(keys(store, 0)) > 25:
        counts.append(await purger.purge([0], now=NOW))
        assert len(counts) < 20
    assert all(c <= 5 for c in counts)  # 10 keys scanned per call, half of them expired
    assert keys(store, 0) == {f"k{n:03d}".encode() for n in range(0, 50, 2)}
    sent = tombstones(producer)
    assert len(sent) == 25 == len(set(sent))


async def test_deletes_per_call_are_capped(store):
    for n in range(30):
        put(store, 0, f"k{n:03d}", NOW - RETENTION - 1)
    producer = FakeProducer()
    purger = LedgerPurger(writer_for(store, producer), RETENTION, max_deletes=7)
    assert await purger.purge([0], now=NOW) == 7
    assert await purger.purge([0], now=NOW) == 7  # carries on from the cursor
    assert len(keys(store, 0)) == 16
    assert [k for _, k in tombstones(producer)] == [f"k{n:03d}".encode() for n in range(14)]


async def test_maybe_purge_runs_at_most_once_per_interval(store):
    put(store, 0, "old", NOW - RETENTION - 1)
    clock = SimpleNamespace(t=0.0)
    producer = FakeProducer()
    purger = LedgerPurger(writer_for(store, producer), RETENTION, interval_s=60.0, wall=lambda: NOW,
                          clock=lambda: clock.t)
    assert purger.interval_s == 60.0
    assert await purger.maybe_purge([event(0)]) == 0  # the first interval has not passed
    clock.t = 61.0
    assert await purger.maybe_purge([event(0)]) == 1
    put(store, 0, "old2", NOW - RETENTION - 1)
    clock.t = 100.0
    assert await purger.maybe_purge([event(0)]) == 0
    clock.t = 122.0
    assert await purger.maybe_purge([event(0), event(0)]) == 1
    assert tombstones(producer) == [(0, b"old"), (0, b"old2")]


async def test_maybe_purge_purges_the_partitions_of_the_events(store):
    for p in range(3):
        put(store, p, f"old-{p}", NOW - RETENTION - 1)
    producer = FakeProducer()
    purger = LedgerPurger(writer_for(store, producer), RETENTION, interval_s=0.0,
                          wall=lambda: NOW)
    assert await purger.maybe_purge([event(2), event(0), event(2)]) == 2
    assert sorted(tombstones(producer)) == [(0, b"old-0"), (2, b"old-2")]
    assert keys(store, 1) == {b"old-1"}


def test_interval_follows_a_short_retention():
    writer = TableWriter(FakeTable(SimpleNamespace()), None)
    assert LedgerPurger(writer, 36.0).interval_s == 9.0
    assert LedgerPurger(writer, 72 * 3600.0).interval_s == 60.0


async def test_without_a_rocksdb_store_or_a_producer_nothing_is_purged(store):
    writer = TableWriter(SimpleNamespace(data={}), FakeProducer().get)
    assert await LedgerPurger(writer, RETENTION).purge([0], now=NOW) == 0
    # a RocksDB store but no producer: no tombstone can reach the changelog, so none is
    # written to the store either (the entry would come back with the next recovery)
    put(store, 0, "old", NOW - RETENTION - 1)
    writer = TableWriter(FakeTable(store), None, sleep=no_sleep)
    assert await LedgerPurger(writer, RETENTION).purge([0], now=NOW) == 0
    assert keys(store, 0) == {b"old"}


async def test_failures_never_raise(store, caplog):
    put(store, 0, "old", NOW - RETENTION - 1)
    producer = FakeProducer(fail=100)  # the changelog write keeps failing
    purger = LedgerPurger(writer_for(store, producer), RETENTION, interval_s=0.0,
                          wall=lambda: NOW)
    assert await purger.maybe_purge([event(0)]) == 0
    assert "purge failed" in caplog.text
    assert purger.deleted == 0 and producer.log == {}
