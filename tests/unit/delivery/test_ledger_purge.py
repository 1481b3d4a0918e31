"""LedgerPurger: expired ledger entries are deleted partition by partition, each tombstone going
to the partition the entry lives in, within bounds per call, resuming where it stopped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import rocksdict
from faust.streams import current_event

from streamproc.deliver_agents import LedgerPurger

OFFSET_KEY = b"__faust\0offset__"
RETENTION = 3600.0
NOW = 1_800_000_000.0


class FakeStore:
    """faust's RocksDB store as the purger sees it: one raw-mode rocksdict per partition."""

    offset_key = OFFSET_KEY

    def __init__(self, root, partitions: int) -> None:
        raw = rocksdict.Options(raw_mode=True)
        self._dbs = {p: rocksdict.Rdict(str(root / f"p{p}"), options=raw) for p in range(partitions)}

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


class FakeTable:
    """faust Table semantics for `del table[key]`: the tombstone goes to the changelog partition
    of faust's *current event*; the store deletes the key wherever it is."""

    name = "ledger-test"

    def __init__(self, store: FakeStore) -> None:
        self.data = store
        self.tombstones: list[tuple[int, bytes]] = []

    def __delitem__(self, key: bytes) -> None:
        event = current_event()
        assert event is not None, "table modified outside of a stream"
        self.tombstones.append((event.message.partition, key))
        for db in self.data._dbs.values():
            db.delete(key)


class Event:
    """A sink event as faust hands it over (weak-referenceable, like faust's Event)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic="sink")


def event(partition: int) -> Event:
    return Event(partition)


def put(store: FakeStore, partition: int, key: str, at: float | bytes) -> None:
    value = at if isinstance(at, bytes) else repr(float(at)).encode()
    store._dbs[partition][key.encode()] = value


def keys(store: FakeStore, partition: int) -> set[bytes]:
    return set(store._dbs[partition].keys()) - {OFFSET_KEY}


@pytest.fixture
def store(tmp_path):
    s = FakeStore(tmp_path, 3)
    yield s
    s.close()


def test_expired_entries_are_deleted_with_tombstones_to_their_own_partition(store):
    for p in range(3):
        put(store, p, f"old-{p}", NOW - RETENTION - 1)
        put(store, p, f"new-{p}", NOW - 10)
        store._dbs[p][OFFSET_KEY] = b"42"
    table = FakeTable(store)
    purger = LedgerPurger(table, RETENTION)
    deleted = purger.purge({p: event(p) for p in range(3)}, now=NOW)
    assert deleted == 3
    assert sorted(table.tombstones) == [(0, b"old-0"), (1, b"old-1"), (2, b"old-2")]
    for p in range(3):
        assert keys(store, p) == {f"new-{p}".encode()}
        assert store._dbs[p][OFFSET_KEY] == b"42"  # faust's changelog offset is never touched


def test_only_the_partitions_of_the_batch_are_touched(store):
    for p in range(3):
        put(store, p, f"old-{p}", NOW - RETENTION - 1)
    table = FakeTable(store)
    LedgerPurger(table, RETENTION).purge({1: event(1)}, now=NOW)
    assert table.tombstones == [(1, b"old-1")]
    assert keys(store, 0) == {b"old-0"} and keys(store, 2) == {b"old-2"}


def test_unreadable_values_are_purged_and_the_boundary_is_exclusive(store):
    put(store, 0, "garbage", b"not-a-number")
    put(store, 0, "exactly", NOW - RETENTION)  # as old as the window: no longer "seen"
    put(store, 0, "inside", NOW - RETENTION + 1)
    table = FakeTable(store)
    LedgerPurger(table, RETENTION).purge({0: event(0)}, now=NOW)
    assert keys(store, 0) == {b"inside"}


def test_each_call_is_bounded_and_resumes_where_it_stopped(store):
    for n in range(50):
        put(store, 0, f"k{n:03d}", NOW - RETENTION - 1 if n % 2 else NOW)
    table = FakeTable(store)
    purger = LedgerPurger(table, RETENTION, scan_keys=10, max_deletes=1000)
    counts = []
    while len(keys(store, 0)) > 25:
        counts.append(purger.purge({0: event(0)}, now=NOW))
        assert len(counts) < 20
    assert all(c <= 5 for c in counts)  # 10 keys scanned per call, half of them expired
    assert keys(store, 0) == {f"k{n:03d}".encode() for n in range(0, 50, 2)}
    assert len(table.tombstones) == 25 == len(set(table.tombstones))


def test_deletes_per_call_are_capped(store):
    for n in range(30):
        put(store, 0, f"k{n:03d}", NOW - RETENTION - 1)
    table = FakeTable(store)
    purger = LedgerPurger(table, RETENTION, max_deletes=7)
    assert purger.purge({0: event(0)}, now=NOW) == 7
    assert purger.purge({0: event(0)}, now=NOW) == 7  # carries on from the cursor
    assert len(keys(store, 0)) == 16


def test_maybe_purge_runs_at_most_once_per_interval(store):
    put(store, 0, "old", NOW - RETENTION - 1)
    table = FakeTable(store)
    clock = SimpleNamespace(t=0.0)
    purger = LedgerPurger(table, RETENTION, interval_s=60.0, wall=lambda: NOW,
                          clock=lambda: clock.t)
    assert purger.interval_s == 60.0
    assert purger.maybe_purge([event(0)]) == 0  # the first interval has not passed
    clock.t = 61.0
    assert purger.maybe_purge([event(0)]) == 1
    put(store, 0, "old2", NOW - RETENTION - 1)
    clock.t = 100.0
    assert purger.maybe_purge([event(0)]) == 0
    clock.t = 122.0
    assert purger.maybe_purge([event(0), event(0)]) == 1


def test_interval_follows_a_short_retention():
    assert LedgerPurger(FakeTable(SimpleNamespace()), 36.0).interval_s == 9.0
    assert LedgerPurger(FakeTable(SimpleNamespace()), 72 * 3600.0).interval_s == 60.0


def test_non_rocksdb_store_and_failures_never_raise(store, caplog):
    assert LedgerPurger(SimpleNamespace(data={}), RETENTION).purge({0: event(0)}, now=NOW) == 0

    class Exploding(FakeTable):
        def __delitem__(self, key):
            raise RuntimeError("boom")

    put(store, 0, "old", NOW - RETENTION - 1)
    purger = LedgerPurger(Exploding(store), RETENTION, interval_s=0.0, wall=lambda: NOW)
    assert purger.maybe_purge([event(0)]) == 0
    assert "purge failed" in caplog.text
