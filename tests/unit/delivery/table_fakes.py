"""Test doubles for the ledger table and its writer (runtime.TableWriter): faust's partitioned
RocksDB store over real raw-mode rocksdict databases, a table naming its changelog topic, and
aiokafka's create_batch/send_batch producer keeping each changelog partition's log."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import rocksdict
from faust.stores.rocksdb import Store as RocksDBStore

from streamproc.runtime import FeedEvent

OFFSET_KEY = b"__faust\0offset__"
TOPIC = "app-ledger-test-changelog"


class FakeStore(RocksDBStore):
    """faust's RocksDB store as the ledger, the purger and TableWriter use it: one raw-mode
    rocksdict per partition. A subclass of faust's store (the runtime only takes the direct
    path for faust's RocksDB store), without its service and app machinery: its __init__ is
    not run, and what of it would need that machinery is overridden here."""

    offset_key = OFFSET_KEY
    use_rocksdict = True

    def __init__(self, root, partitions: int) -> None:  # no super().__init__: no app, no table
        self.root = root
        self._dbs: dict[int, rocksdict.Rdict] = {}
        for p in range(partitions):
            self._db_for_partition(p)

    def __repr__(self) -> str:  # mode's Service.__repr__ reads the service state __init__ sets
        return f"<FakeStore {sorted(self._dbs)}>"

    def __len__(self) -> int:  # faust counts the keys of the table's active partitions
        return sum(1 for db in self._dbs.values() for k in db.keys() if k != OFFSET_KEY)

    @property
    def path(self):  # faust: the app's tabledir
        return self.root

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
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = {}
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

    async def get(self) -> FakeProducer:
        """The producer getter a TableWriter is given (the worker's OutputProducer.started)."""
        return self


def event(partition: int) -> FeedEvent:
    """A sink record in an agent batch, as the runtime hands it over (weak-referenceable,
    `.message.partition`, like faust's Event)."""
    return FeedEvent(SimpleNamespace(partition=partition, topic="sink"))


async def no_sleep(_: float) -> None:
    return None


def stored(store: FakeStore, partition: int) -> dict[bytes, bytes]:
    """A partition store's entries, without faust's changelog offset."""
    return {k: v for k, v in store._dbs[partition].items() if k != OFFSET_KEY}
