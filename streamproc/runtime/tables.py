"""Batch writes into faust's RocksDB tables, and the few views of a table streamproc needs.

A faust table write (`table[key] = value`) costs a current-event lookup, a store write and a
changelog send with a task and a future per record (more CPU than the routing, under
cProfile), and faust's pre-commit flush gives up after 0.1 s. TableWriter writes the same
bytes a batch at a time: one RocksDB write batch per partition, then Kafka record batches to
the same changelog partition through the worker's idempotent acks=all producer, then the
store's persisted offset, as faust does. `write()` returns the send; the batch awaits it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, Awaitable, Callable, Iterable, NamedTuple, Optional

from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.types import TP
from rocksdict import WriteBatch

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 4  # per partition batch, 0.2 s, 0.4 s, 0.8 s apart; then the batch fails

Entry = tuple[bytes, "bytes | None"]  # (key, value); None is a tombstone


def set_current_event(event: Any) -> None:
    """Point faust's table API (it uses the current event's partition) at `event`."""
    _current_event.set(weakref.ref(event))


def partition_dbs(table: Any) -> Optional[dict[int, Any]]:
    """The table's open RocksDB partition stores; None when it is not a RocksDB store."""
    store = table.data
    return store._dbs if isinstance(store, RocksDBStore) else None


def active_dbs(table: Any) -> Optional[list[Any]]:
    """The stores of its active partitions; None before it started or when not RocksDB."""
    store = table._data
    return list(store._dbs_for_actives()) if isinstance(store, RocksDBStore) else None


def offset_key(table: Any) -> bytes:
    """The key under which faust keeps the changelog offset in every partition store."""
    return table.data.offset_key


def on_changelog_event(table: Any, callback: Callable[[Any], Awaitable[None]]) -> None:
    """Call `callback` for every changelog record faust applies to `table` (recovery and
    standby): faust's Table(on_changelog_event=...), which streamproc does not pass."""
    if table._on_changelog_event is not None:
        raise RuntimeError(f"{table.name}: a changelog callback is already set")
    table._on_changelog_event = callback


class TableWriter:
    """Direct store writes and batched changelog records for one faust table."""

    def __init__(self, table: Any, producer: Callable[[], Awaitable[Any]] | None, *,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.table, self._producer, self._sleep = table, producer, sleep
        self._topic: str | None = None

    def direct(self) -> bool:
        """True when db() and write() can be used (RocksDB store and a producer)."""
        return self._producer is not None and partition_dbs(self.table) is not None

    def db(self, partition: int) -> Any:
        """The partition's RocksDB store (faust opens it on first use, as its writes do)."""
        return self.table.data._db_for_partition(partition)

    def get_many(self, partition: int, keys: list[bytes]) -> list[Any]:
        db = self.db(partition)
        return db.get(keys) if self.table.data.use_rocksdict else [db.get(k) for k in keys]

    def put(self, partition: int, entries: list[Entry]) -> None:
        """Write the entries into the partition's store as one RocksDB write batch."""
        batch = WriteBatch(raw_mode=True)  # faust opens its stores in raw mode (bytes)
        for key, value in entries:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.db(partition).write(batch)

    def write(self, partition: int, entries: list[Entry]) -> asyncio.Future:
        """put() the entries now, then send them: the ledger keeps a delivered id even when
        its batch fails. The future ends once they are on the broker."""
        self.put(partition, entries)
        return asyncio.ensure_future(self._send_and_persist(partition, entries))

    def stage(self, partition: int, entries: list[Entry]) -> Staged:
        """Send the entries now; Staged.apply() writes the store once the batch's outputs and
        these records are acknowledged, so a failed batch is read again against the state
        it started from."""
        return Staged(self, partition, entries, asyncio.ensure_future(self.send(partition, entries)))

    async def _send_and_persist(self, partition: int, entries: list[Entry]) -> None:
        self.persist(partition, await self.send(partition, entries))

    def persist(self, partition: int, last: int) -> None:
        """Record `last` as the store's persisted offset (as faust does), never backwards."""
        store, tp = self.table.data, TP(self._topic, partition)
        if partition in store._dbs and last > (store.persisted_offset(tp) or -1):
            store.set_persisted_offset(tp, last)

    async def send(self, partition: int, entries: list[Entry]) -> int:
        """Send the entries' changelog records (retried); the last offset written."""
        topic = self._topic = self._topic or self.table.changelog_topic.get_topic_name()
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                last = await self._send_once(topic, partition, entries)
                break
            except Exception as exc:
                if attempt == SEND_ATTEMPTS:
                    raise
                delay = 0.2 * 2 ** (attempt - 1)
                log.warning("%s: changelog write of %d entries to partition %d failed (%r); "
                            "retrying in %.1fs", topic, len(entries), partition, exc, delay)
                await self._sleep(delay)
        return last

    async def _send_once(self, topic: str, partition: int, entries: list[Entry]) -> int:
        """Send the records as few record batches as fit; the last offset written."""
        assert self._producer is not None
        producer, sent, start = await self._producer(), [], 0
        while start < len(entries):
            batch, end = producer.create_batch(), start
            while end < len(entries) and batch.append(
                    key=entries[end][0], value=entries[end][1], timestamp=None) is not None:
                end += 1
            if end == start:
                raise ValueError(f"{topic}: entry {entries[start][0]!r} does not fit a record "
                                 "batch")
            batch.close()  # complete: sent now instead of lingering
            sent.append((await producer.send_batch(batch, topic, partition=partition), end - start))
            start = end
        return max([(await fut).offset + count - 1 for fut, count in sent], default=-1)


class Staged(NamedTuple):
    writer: TableWriter
    partition: int
    entries: list[Entry]
    sent: asyncio.Future

    def apply(self) -> None:  # not into a partition revoked meanwhile (faust would reopen it)
        if self.partition in self.writer.table.data._dbs:
            self.writer.put(self.partition, self.entries)
            self.writer.persist(self.partition, self.sent.result())


async def wait_all(futures: Iterable[asyncio.Future]) -> None:
    """Wait for every changelog send of a batch; the first failure is raised once all ended."""
    futures = list(futures)
    if futures:
        await asyncio.wait(futures)
        for fut in futures:
            fut.result()
