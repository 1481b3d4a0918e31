"""`streamproc replay`: re-produce a range of a raw input topic or of a sink topic into the
same topic, so the running workers process those records again.

- The range is per partition: from `--from-offset N` (negative: N before the end) or the first
  record at/after `--from-time`, up to the end offsets captured when the command starts (or
  the last record at/before `--to-time`). The command never waits for new records, and never
  reads what it produces itself.
- Records keep their partition, key, value, headers and timestamp (parsers fall back to the
  record time, so a replayed input parses to the same event and the same delivery ids). The
  `streamproc-force` header is streamproc's own: it is removed, and set again only with
  `--force`.
- Input replays go through ingest and routing again; the delivery ledger skips the ids it
  already saw. An input replay with `--destination d` or `--force` cannot be narrowed or
  forced on the input itself (the routing path does not carry the flag), so it replays the
  sink topic(s) over the same time range instead and says so.
- `--force` on a sink replay re-sends each delivery id in the range once (its last copy).
- `--dry-run` counts per partition and per operation; for sink topics it reads the ledger's
  changelog topic (`<APP_ID>-ledger-<dest>-changelog`) to tell how many the ledger will skip.

Also the shared helpers of `streamproc dlq`: time parsing and bounded, group-less reads.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streamproc.kafka import client_kwargs
from streamproc.settings import Settings
from streamproc.topology import Topology

FORCE_HEADER = "streamproc-force"
STALL_SECONDS = 60.0  # no progress for this long while records are due: give up loudly
SEND_CHUNK = 2000  # produce futures awaited per chunk


class UsageError(Exception):
    """A bad command line (exit code 2)."""


def error_text(e: BaseException) -> str:
    text = str(e)
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"


# ------------------------------------------------------------------------------ times

_AGE = re.compile(r"^-?\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
MS_THRESHOLD = 10**11  # numbers above are unix milliseconds


def parse_time(text: str, *, now: float | None = None, option: str = "time") -> float:
    """Unix seconds from ISO-8601 (a naive time is UTC; a date alone is its midnight UTC),
    unix seconds or milliseconds, `now`, or an age such as 30m, 2h, 1d, 1w (that long ago)."""
    s = (text or "").strip()
    now = time.time() if now is None else now
    if not s:
        raise UsageError(f"{option}: empty time")
    if s.lower() == "now":
        return now
    m = _AGE.match(s)
    if m:
        return now - float(m.group(1)) * _AGE_UNITS[m.group(2).lower()]
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise UsageError(f"{option}: {text!r} is not a valid time")
        return value / 1000.0 if value >= MS_THRESHOLD else value
    iso = s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise UsageError(
            f"{option}: cannot read {text!r} as a time (use ISO-8601 such as "
            f"2026-11-20T10:00:00Z, unix seconds, or an age such as 30m, 2h, 1d)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def format_time(ts: float | None) -> str:
    """Unix seconds as `2026-11-20T10:00:00Z` (UTC, whole seconds); `-` when unknown."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "-"


def time_window(since: str | None, until: str | None, *, now: float | None = None,
                names: tuple[str, str] = ("--since", "--until"),
                ) -> tuple[float | None, float | None]:
    now = time.time() if now is None else now
    lo = parse_time(since, now=now, option=names[0]) if since else None
    hi = parse_time(until, now=now, option=names[1]) if until else None
    if lo is not None and hi is not None and hi < lo:
        raise UsageError(f"{names[1]} ({format_time(hi)}) is before {names[0]} "
                         f"({format_time(lo)})")
    return lo, hi


# ------------------------------------------------------------------------------ progress


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


# ------------------------------------------------------------------------------ reading


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
                            client_id=f"{settings.client_id}-{purpose}")


async def partition_counts(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """{topic: partitions} for the topics that exist."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streamproc.topics import describe_partitions

    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka), request_timeout_ms=30000)
    await admin.start()
    try:
        found = await describe_partitions(admin, list(dict.fromkeys(topics)))
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


# ------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class ReplayJob:
    kind: str  # "input" or "sink"
    name: str  # input name or destination slug
    topic: str
    force: bool = False

    @property
    def label(self) -> str:
        return self.name if self.kind == "input" else f"sink.{self.name}"


@dataclass
class ReplayPlan:
    jobs: list[ReplayJob]
    notes: list[str] = field(default_factory=list)


def plan_replay(topology: Topology, source: str, *, destination: str | None = None,
                force: bool = False, by_offset: bool = False) -> ReplayPlan:
    """What `replay <source>` re-produces (pure; raises UsageError)."""
    inputs = list(topology.inputs)
    dests = list(topology.destinations)
    valid = ", ".join(inputs + [f"sink.{d}" for d in dests])
    if destination is not None and destination not in dests:
        raise UsageError(f"--destination {destination!r} is not one of {', '.join(dests)}")

    def sink_job(slug: str, notes: list[str]) -> ReplayJob:
        spec = topology.destinations[slug]
        if not spec.enabled:
            notes.append(f"destination {slug} is disabled in {topology.path}: no worker "
                         f"delivers {spec.sink.name} until it is enabled")
        return ReplayJob("sink", slug, spec.sink.name, force)

    if source.startswith("sink."):
        slug = source[len("sink."):]
        if slug not in dests:
            raise UsageError(f"unknown source {source!r} (one of: {valid})")
        if destination is not None and destination != slug:
            raise UsageError(f"--destination {destination} contradicts {source}")
        notes: list[str] = []
        return ReplayPlan([sink_job(slug, notes)], notes)
    if source not in inputs:
        raise UsageError(f"unknown source {source!r} (one of: {valid})")
    if destination is None and not force:
        return ReplayPlan([ReplayJob("input", source, topology.inputs[source].name)])
    # Narrowing to one destination or forcing cannot be done on the input itself: replay
    # the sink topic(s) over the same time range.
    why = "--destination" if destination is not None else "--force"
    if by_offset:
        raise UsageError(f"{why} on an input replays sink topics, whose offsets are not the "
                         f"input's: use --from-time (or `replay sink.<dest> --from-offset`)")
    slugs = [destination] if destination is not None else topology.enabled
    if not slugs:
        raise UsageError(f"no destination is enabled in {topology.path}")
    notes = []
    jobs = [sink_job(s, notes) for s in slugs]
    notes.insert(0, (
        f"{why} with input {source}: replaying {', '.join(j.label for j in jobs)} over the same "
        f"time range instead of {topology.inputs[source].name} (sink records are per "
        f"destination; the range applies to the time they were routed, and the sink topic "
        f"also holds records from other inputs)" + (
            "; each delivery id is re-sent once, even if the ledger saw it" if force else
            "; the ledger skips ids already delivered")))
    return ReplayPlan(jobs, notes)


# ------------------------------------------------------------------------------ stats


@dataclass
class RangeStats:
    """What one pass over a range saw."""

    per_partition: Counter = field(default_factory=Counter)
    by_op: Counter = field(default_factory=Counter)  # sink: op; input: event type / reason
    ids: dict[str, tuple[int, int]] = field(default_factory=dict)  # sink: id -> last (p, offset)
    unreadable: int = 0
    dead_letters: Counter = field(default_factory=Counter)  # input: reason -> count

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())

    def add_sink(self, m: Any) -> None:
        self.per_partition[m.partition] += 1
        try:
            d = orjson.loads(m.value)
            rid, op = d["id"], d.get("op", "?")
            if not isinstance(rid, str):
                raise TypeError("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.unreadable += 1
            return
        self.by_op[op] += 1
        self.ids[rid] = (m.partition, m.offset)

    def add_input(self, source: str, m: Any) -> None:
        from streamproc.agents import parse_input

        self.per_partition[m.partition] += 1
        events, errors = parse_input(source, m)
        for ev in events:
            self.by_op[getattr(ev, "type", None) or getattr(ev, "event", None) or "event"] += 1
        for err in errors:
            self.dead_letters[err.reason] += 1


def sink_id(value: bytes | None) -> str | None:
    try:
        rid = orjson.loads(value or b"null")["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return rid if isinstance(rid, str) else None


def replay_headers(headers: Iterable[tuple[str, bytes]] | None, force: bool,
                   ) -> list[tuple[str, bytes]]:
    """The record's headers without streamproc-force, plus streamproc-force: 1 when forced."""
    out = [(k, v) for k, v in (headers or ()) if k != FORCE_HEADER]
    if force:
        out.append((FORCE_HEADER, b"1"))
    return out


def ledger_changelog(settings: Settings, slug: str) -> str:
    """The changelog topic of a destination's delivery ledger (faust: <id>-<table>-changelog)."""
    return f"{settings.app_id}-ledger-{slug}-changelog"


def describe_ranges(ranges: list[PartitionRange]) -> str:
    parts = [f"p{r.partition} {r.start}..{r.stop - 1}" for r in ranges if r.count]
    return ", ".join(parts) if parts else "nothing in range"


def _counts(c: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))


# ------------------------------------------------------------------------------ running


async def _read_ledger(settings: Settings, slug: str, wanted: set[str], now: float,
                       ) -> tuple[set[str] | None, str]:
    """Ids of `wanted` the ledger holds within the retention window, from its changelog topic;
    (None, why) when it cannot be read."""
    from streamproc.delivery.ledger import as_unix_seconds

    topic = ledger_changelog(settings, slug)
    parts = (await partition_counts(settings, [topic])).get(topic)
    if not parts:
        return None, (f"ledger changelog {topic} not found (no worker ran with "
                      f"STREAMPROC_APP_ID={settings.app_id}?)")
    retention = settings.routing.ledger_retention_hours * 3600
    seen: dict[str, float | None] = {}
    consumer = new_consumer(settings, "replay-ledger")
    await consumer.start()
    try:
        ranges = await compute_ranges(consumer, topic, parts)
        progress = Progress(f"ledger {topic}", sum(r.count for r in ranges))
        async for m in scan(consumer, ranges, progress):
            key = m.key.decode("utf-8", "replace") if m.key is not None else None
            if key in wanted:
                seen[key] = None if m.value is None else as_unix_seconds(m.value)
        progress.finish()
    finally:
        await consumer.stop()
    fresh = {k for k, at in seen.items() if at is not None and now - at < retention}
    return fresh, topic


async def _run_job(settings: Settings, job: ReplayJob, args: argparse.Namespace,
                   from_ms: int | None, to_ms: int | None, now: float, out: Any) -> int:
    parts = (await partition_counts(settings, [job.topic])).get(job.topic)
    if not parts:
        print(f"replay {job.label}: topic {job.topic} does not exist "
              f"(run `streamproc topics apply`)", file=sys.stderr)
        return 1
    consumer = new_consumer(settings, "replay")
    await consumer.start()
    try:
        ranges = await compute_ranges(consumer, job.topic, parts,
                                      from_offset=args.from_offset, from_ms=from_ms, to_ms=to_ms)
        total = sum(r.count for r in ranges)
        print(f"replay {job.label}: {job.topic}, {total} record(s) in range "
              f"({describe_ranges(ranges)})", file=out)
        if total == 0:
            return 0
        stats: RangeStats | None = None
        if args.dry_run or (job.kind == "sink" and job.force):
            stats = RangeStats()
            progress = Progress(f"replay {job.label} (counting)", total)
            async for m in scan(consumer, ranges, progress):
                if job.kind == "sink":
                    stats.add_sink(m)
                else:
                    stats.add_input(job.name, m)
            progress.finish()
        if args.dry_run:
            await _report_dry_run(settings, job, stats, now, out)
            return 0
        sent, dups = await _reproduce(settings, consumer, job, ranges, total, stats)
    finally:
        await consumer.stop()
    extra = (f" ({dups} older copies of ids also later in the range left out: each id is "
             f"re-sent once)" if dups else "")
    print(f"replay {job.label}: re-produced {sent} record(s) to {job.topic}"
          f"{' with streamproc-force: 1' if job.force else ''}{extra}", file=out)
    if job.kind == "input":
        print(f"replay {job.label}: the workers parse and route them again; sink records keep "
              f"their delivery ids, so the ledger skips what was delivered within "
              f"{settings.routing.ledger_retention_hours:g}h (re-send with "
              f"`replay sink.<dest> --force`)", file=out)
    elif not job.force:
        print(f"replay {job.label}: the ledger skips ids already delivered; the others are "
              f"delivered", file=out)
    return 0


async def _report_dry_run(settings: Settings, job: ReplayJob, stats: RangeStats | None,
                          now: float, out: Any) -> None:
    assert stats is not None
    per_part = ", ".join(f"p{p} {n}" for p, n in sorted(stats.per_partition.items()))
    print(f"  per partition: {per_part}", file=out)
    if job.kind == "input":
        events = sum(stats.by_op.values())
        print(f"  would re-ingest {stats.total} record(s): {events} event(s)"
              + (f" ({_counts(stats.by_op)})" if events else ""), file=out)
        if stats.dead_letters:
            print(f"  {sum(stats.dead_letters.values())} would be dead-lettered again at ingest "
                  f"({_counts(stats.dead_letters)})", file=out)
        print("  what each destination gets depends on the routing state; re-routed records "
              "keep their delivery ids, and the ledger skips those already delivered", file=out)
        print("  dry run: nothing was produced", file=out)
        return
    distinct = len(stats.ids)
    print(f"  {stats.total} sink record(s), {distinct} distinct delivery id(s)"
          + (f" ({_counts(stats.by_op)})" if stats.by_op else ""), file=out)
    if stats.unreadable:
        print(f"  {stats.unreadable} unreadable record(s) (the worker dead-letters them)",
              file=out)
    seen, where = await _read_ledger(settings, job.name, set(stats.ids), now)
    if seen is None:
        print(f"  ledger: unknown ({where})", file=out)
        if job.force:
            print(f"  would re-send to {job.name}: {distinct} (--force)", file=out)
        else:
            print(f"  would re-send to {job.name}: at most {distinct} (the ledger skips ids "
                  f"already delivered)", file=out)
    else:
        print(f"  ledger ({where}): {len(seen)} of the {distinct} id(s) delivered within "
              f"{settings.routing.ledger_retention_hours:g}h", file=out)
        if job.force:
            print(f"  would re-send to {job.name}: {distinct} (--force; "
                  f"{len(seen)} of them again)", file=out)
        else:
            print(f"  would re-send to {job.name}: {distinct - len(seen)} "
                  f"(skipped by the ledger: {len(seen)})", file=out)
    print("  dry run: nothing was produced", file=out)


async def _reproduce(settings: Settings, consumer: AIOKafkaConsumer, job: ReplayJob,
                     ranges: list[PartitionRange], total: int, stats: RangeStats | None,
                     ) -> tuple[int, int]:
    """Produce the range back to its topic: same partition, key, value, timestamp, headers
    (streamproc-force per job). Forced sink replays send each id once (its last copy)."""
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all",
                                enable_idempotence=True, linger_ms=5,
                                client_id=f"{settings.client_id}-replay")
    await producer.start()
    sent = dups = 0
    try:
        futs: list[asyncio.Future] = []
        progress = Progress(f"replay {job.label}", total)
        async for m in scan(consumer, ranges, progress):
            if job.kind == "sink" and job.force and stats is not None:
                rid = sink_id(m.value)
                if rid is not None and stats.ids.get(rid) != (m.partition, m.offset):
                    dups += 1
                    continue
            futs.append(await producer.send(
                job.topic, value=m.value, key=m.key, partition=m.partition,
                timestamp_ms=m.timestamp if m.timestamp and m.timestamp > 0 else None,
                headers=replay_headers(m.headers, job.force and job.kind == "sink")))
            sent += 1
            if len(futs) >= SEND_CHUNK:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
        progress.finish()
    finally:
        await producer.stop()
    return sent, dups


async def run_replay_command(settings: Settings, topology: Topology,
                             args: argparse.Namespace) -> int:
    out = sys.stdout
    now = time.time()
    try:
        if args.from_offset is not None and args.from_time is not None:
            raise UsageError("give --from-offset or --from-time, not both")
        from_s = parse_time(args.from_time, now=now, option="--from-time") \
            if args.from_time is not None else None
        to_s = parse_time(args.to_time, now=now, option="--to-time") if args.to_time else None
        if from_s is not None and to_s is not None and to_s < from_s:
            raise UsageError(f"--to-time ({format_time(to_s)}) is before --from-time "
                             f"({format_time(from_s)})")
        plan = plan_replay(topology, args.source, destination=args.destination,
                           force=args.force, by_offset=args.from_offset is not None)
    except UsageError as e:
        print(f"streamproc replay: {e}", file=sys.stderr)
        return 2
    for note in plan.notes:
        print(f"note: {note}", file=out)
    from_ms = int(from_s * 1000) if from_s is not None else None
    to_ms = int(to_s * 1000) if to_s is not None else None
    code = 0
    for job in plan.jobs:
        try:
            code = max(code, await _run_job(settings, job, args, from_ms, to_ms, now, out))
        except (KafkaError, RuntimeError, OSError) as e:
            print(f"streamproc replay {job.label}: {error_text(e)}", file=sys.stderr)
            return 1
    return code


__all__ = [
    "FORCE_HEADER", "PartitionRange", "Progress", "RangeStats", "ReplayJob",
    "ReplayPlan", "UsageError", "compute_ranges", "fetch_exact", "format_time",
    "ledger_changelog", "new_consumer", "parse_time", "partition_counts", "plan_replay",
    "replay_headers", "run_replay_command", "scan", "sink_id", "time_window",
]
