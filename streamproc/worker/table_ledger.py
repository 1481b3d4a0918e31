"""The delivery ledger over a destination's faust table `ledger-<slug>` (RocksDB, changelogged,
co-partitioned with the sink topic), read and written a batch at a time.

Each entry lives in the partition of the sink record that carried its id: the agent hands the
batch's events over with begin(), and every id goes to its event's partition. Per batch and
partition the ledger
- reads the ids with one multi-get on that partition's RocksDB store (seen_many);
- writes the delivered ids into that store as soon as the API acknowledged them (mark), and
  sends their changelog records (key = id, value = unix seconds, as a faust table write would)
  as one Kafka record batch per partition through the worker's own idempotent acks=all
  producer, instead of one faust send per id (streamproc/runtime/tables.py);
- flush() returns once every changelog record sent so far is on the broker (the agent awaits it
  before the sink offsets are acknowledged), then records the last changelog offset as the
  store's persisted offset, as faust does after its own changelog writes (so a restart replays
  only what came after).

The entries are the ones faust's table API would write (same key and value bytes, same store,
same changelog partition), so recovery, standby replicas, the purge and table reads see no
difference. A store that is not faust's partitioned RocksDB store falls back to the table API
(one faust current event bound per partition group)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, Iterator

from streamproc.delivery.ledger import as_unix_seconds
from streamproc.runtime import TableWriter, partition_dbs, set_current_event

log = logging.getLogger(__name__)

class TableLedger:
    """Ledger (seen/seen_many/mark) over the faust ledger table, batch-wise; see the module."""

    def __init__(self, table: Any, retention_s: float,
                 producer: Callable[[], Awaitable[Any]] | None = None, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be > 0")
        self.table, self.retention_s = table, retention_s
        self._producer, self._clock = producer, clock
        self.writer = TableWriter(table, producer, sleep=sleep)
        self.events: dict[str, Any] = {}  # delivery id -> the sink event that carried it
        self.pending: list[asyncio.Future] = []

    # ------------------------------------------------------------------ batch scope

    def begin(self, events: dict[str, Any]) -> None:
        """Start a batch: `events` maps each delivery id to the sink event that carried it."""
        self.events = events

    def end(self) -> None:
        """Forget the batch's events. Changelog sends still running (a failed batch) go on; a
        failure of theirs is logged."""
        self.events = {}
        for fut in self.pending:
            fut.add_done_callback(_log_failure)
        self.pending = []

    async def flush(self) -> None:
        """Wait until every changelog record sent so far is on the broker (raises if one could
        not be written: the batch then fails and its records stay unacknowledged)."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            await asyncio.wait(pending)  # a cancelled wait leaves the sends running
        except BaseException:
            for fut in pending:
                fut.add_done_callback(_log_failure)
            raise
        failed = [f for f in pending if f.cancelled() or f.exception() is not None]
        for fut in failed[1:]:
            _log_failure(fut)
        if failed:
            failed[0].result()  # raises its error

    # ------------------------------------------------------------------ Ledger

    def seen(self, record_id: str) -> bool:
        return record_id in self.seen_many([record_id])

    def seen_many(self, record_ids: Iterable[str]) -> set[str]:
        """The ids delivered within the retention window."""
        now = self._clock()
        dbs = self._dbs()
        out: set[str] = set()
        if dbs is None:
            for record_id, value in self._fallback_get(record_ids):
                if self._fresh(value, now):
                    out.add(record_id)
            return out
        for partition, ids in self._by_partition(record_ids).items():
            values = self.writer.get_many(partition, [i.encode() for i in ids])
            out.update(i for i, v in zip(ids, values) if v is not None and self._fresh(v, now))
        return out

    def mark(self, record_ids: Iterable[str], at: float) -> None:
        """Write the ids to the local store now and send their changelog records (flush() waits
        for them)."""
        value = repr(float(at)).encode()
        if self._dbs() is None or self._producer is None:
            self._fallback_mark(record_ids, value)
            return
        for partition, ids in self._by_partition(record_ids).items():
            self.pending.append(self.writer.write(partition, [(i.encode(), value) for i in ids]))

    # ------------------------------------------------------------------ internals

    def _fresh(self, value: object, now: float) -> bool:
        at = as_unix_seconds(value)
        return at is not None and now - at < self.retention_s

    def _dbs(self) -> dict[int, Any] | None:
        return partition_dbs(self.table)

    def _by_partition(self, record_ids: Iterable[str]) -> dict[int, list[str]]:
        events = self.events
        out: dict[int, list[str]] = {}
        for record_id in record_ids:
            ev = events.get(record_id)
            if ev is None:
                ev = _current_event()
                if ev is None:
                    raise KeyError(f"ledger: no sink event for {record_id!r}")
            partition = ev.message.partition
            group = out.get(partition)
            if group is None:
                out[partition] = [record_id]
            else:
                group.append(record_id)
        return out

    def _fallback_get(self, record_ids: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """(id, stored value) through the table API, one current event per partition group."""
        for ids in self._groups(record_ids):
            for record_id in ids:
                yield record_id, self.table.get(record_id)

    def _fallback_mark(self, record_ids: Iterable[str], value: bytes) -> None:
        for ids in self._groups(record_ids):
            for record_id in ids:
                self.table[record_id] = value

    def _groups(self, record_ids: Iterable[str]) -> Iterator[list[str]]:
        """The ids per partition, with faust's current event bound to an event of it."""
        for ids in self._by_partition(record_ids).values():
            ev = self.events.get(ids[0])
            if ev is not None:
                set_current_event(ev)
            yield ids

def _current_event() -> Any:
    from faust.streams import current_event  # public

    return current_event()


def _log_failure(fut: asyncio.Future) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.error("ledger changelog write failed: %r", exc)
