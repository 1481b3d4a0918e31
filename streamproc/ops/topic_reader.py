"""Bounded, group-less reads of a topic range: per-partition offset ranges (from an offset, a
time, or the start, up to the end offsets at the start), reading them once without committing,
reading single records at given offsets, and a progress line on stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamproc.config.kafka import client_kwargs
from streamproc.config.settings import Settings

STALL_SECONDS = 60.0  # no progress for this long while records are due: give up loudly


class Progress:
    """`label: read N/total (p%)` on stderr, at most once a second, and once at the end."""

    def __init__(self, label: str, total: int, *, stream: Any = None,
                 interval: float = 1.0, clock: Any = time.monotonic,
                 quiet_when_fast: bool = False) -> None:
        self.label, self.total, self.done = label, total, 0
        self.quiet_when_fast = quiet_when_fast  # no final line when nothing was shown before
        self._shown = False
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self._clock = interval, clock
        self._last = clock()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        if self.total > 0:
            pct = min(100.0, 100.0 * self.done / self.total)
            return f"{self.label}: read {self.done}/{self.total} records ({pct:.0f}%)"
        return f"{self.label}: read {self.done} records"

    def tick(self, n: int = 1) -> None:
        self.done += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(final=False)

    def finish(self) -> None:
        if self._shown or not self.quiet_when_fast:
            self._emit(final=True)

    def _emit(self, *, final: bool) -> None:
        self._shown = True
        if self._tty:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, stop) of one partition."""

    topic: str
    partition: int
    start: int
    stop: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def count(self) -> int:
        return max(0, self.stop - self.start)


def new_consumer(settings: Settings, purpose: str) -> AIOKafkaConsumer:
    """A group-less consumer: nothing is committed, no rebalance touches the workers."""
    return AIOKafkaConsumer(**client_kwargs(settings.kafka), group_id=None,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            isolation_level=settings.kafka.isolation_level,
                            client_id=f"{settings.client_id}-{purpose}")


async def partition_counts(settings: Settings, topics: Iterable[str], op: str = "READ",
                           ) -> dict[str, int]:
    """{topic: partitions} for the topics that exist; one the client may not see raises
    AccessDenied naming it and `op`, what the caller is about to do with it."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streamproc.config.topics import describe_partitions

    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka), request_timeout_ms=30000)
    await admin.start()
    try:
        found = await describe_partitions(admin, list(dict.fromkeys(topics)),
                                          denied_as=(op, settings.kafka))
    finally:
        await admin.close()
    return {name: parts for name, (parts, _rf) in found.items()}


async def compute_ranges(consumer: AIOKafkaConsumer, topic: str, partitions: int, *,
                         from_offset: int | None = None, from_ms: int | None = None,
                         to_ms: int | None = None) -> list[PartitionRange]:
    """The offsets to read per partition; the end is the end offset right now."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    start = dict(begin)
    if from_offset is not None:
        for tp in tps:
            want = from_offset if from_offset >= 0 else end[tp] + from_offset
            start[tp] = min(max(want, begin[tp]), end[tp])
    elif from_ms is not None:
        found = await consumer.offsets_for_times({tp: max(0, from_ms) for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            start[tp] = end[tp] if hit is None else max(hit.offset, begin[tp])
    stop = dict(end)
    if to_ms is not None:
        found = await consumer.offsets_for_times({tp: max(0, to_ms + 1) for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            if hit is not None:
                stop[tp] = min(stop[tp], hit.offset)
    return [PartitionRange(topic, tp.partition, start[tp], max(start[tp], stop[tp]))
            for tp in tps]


async def scan(consumer: AIOKafkaConsumer, ranges: Iterable[PartitionRange],
               progress: Progress | None = None) -> AsyncIterator[Any]:
    """Yield the records of the ranges (per partition in offset order). Ends when every
    partition reached its stop offset; never waits for records produced after the start."""
    live = {r.tp: r for r in ranges if r.count > 0}
    if not live:
        return
    consumer.assign(list(live))
    for tp, r in live.items():
        consumer.seek(tp, r.start)
    last_progress = time.monotonic()
    while live:
        batch = await consumer.getmany(*live, timeout_ms=500, max_records=2000)
        got = 0
        for tp, msgs in batch.items():
            r = live.get(tp)
            if r is None:
                continue
            for m in msgs:
                if m.offset >= r.stop:
                    break
                if m.offset >= r.start:
                    got += 1
                    yield m
            if progress is not None:
                progress.tick(sum(1 for m in msgs if r.start <= m.offset < r.stop))
        for tp in list(live):
            if await consumer.position(tp) >= live[tp].stop:
                consumer.pause(tp)
                del live[tp]
        if got or batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            where = ", ".join(f"{tp.topic}[{tp.partition}] up to {r.stop}"
                              for tp, r in live.items())
            raise RuntimeError(f"no records arrived for {STALL_SECONDS:.0f}s while reading {where}")


async def fetch_exact(consumer: AIOKafkaConsumer, wanted: dict[TopicPartition, Iterable[int]],
                      *, timeout: float = 10.0) -> dict[tuple[str, int, int], Any]:
    """The records at exactly these offsets, when still retained: {(topic, partition,
    offset): record}. Offsets deleted by retention or compaction are simply missing."""
    found: dict[tuple[str, int, int], Any] = {}
    for tp, offsets in wanted.items():
        consumer.assign([tp])
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        offs = sorted(o for o in set(offsets) if begin <= o < end)
        i = 0
        while i < len(offs):
            consumer.seek(tp, offs[i])
            msgs: list[Any] = []
            deadline = time.monotonic() + timeout
            while not msgs and time.monotonic() < deadline:
                msgs = (await consumer.getmany(tp, timeout_ms=500, max_records=500)).get(tp, [])
            if not msgs:
                i += 1
                continue
            by_offset = {m.offset: m for m in msgs}
            last = msgs[-1].offset
            while i < len(offs) and offs[i] <= last:
                if offs[i] in by_offset:
                    found[(tp.topic, tp.partition, offs[i])] = by_offset[offs[i]]
                i += 1
    return found


def describe_ranges(ranges: list[PartitionRange]) -> str:
    """`p0 5..9, p2 0..3` for the non-empty ranges, for a one-line summary."""
    parts = [f"p{r.partition} {r.start}..{r.stop - 1}" for r in ranges if r.count]
    return ", ".join(parts) if parts else "nothing in range"
