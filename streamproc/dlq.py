"""`streamproc dlq list|redrive`: the dead-letter topics (`dlq.<destination>` for delivery,
`streamproc.dlq.ingest` for input that could not be parsed or routed).

- Both read the topics from the beginning up to their end offsets at the start, with a
  group-less consumer (nothing committed, never waits for new records), and select records by
  --destination, --reason and --since/--until (on `dead_lettered_at`), oldest first, at most
  --limit (0: all). `list` shows exactly what `redrive` with the same filters would take.
- `redrive` puts the selected records back where they failed:
  * delivery stage: the sink record, as it was, onto its destination's sink topic with its
    key (so the same partition and the same ledger partition). Not forced: a dead-lettered
    record was never acknowledged, so the ledger has not marked it; and a record already
    re-driven and delivered is then skipped by the ledger, so running redrive twice sends once;
  * ingest stage: the original bytes onto the input's raw topic with the original key (and
    the original headers and timestamp, read back from the raw topic while it still retains
    them: CleverTap's `campaign_id` header lives there). Use it after fixing the parser; after
    fixing a producer, produce the corrected data instead;
  * routing stage: the internal message back onto streamproc.by-user / by-contact.
- Dead-letter records are not deleted or marked (Kafka topics are append-only); they expire
  with the topic's retention. Use --since to leave out what was already handled.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streamproc.kafka import client_kwargs
from streamproc.records import SinkRecord, original_bytes
from streamproc.replay import (
    FORCE_HEADER,
    Progress,
    UsageError,
    error_text,
    compute_ranges,
    fetch_exact,
    format_time,
    new_consumer,
    partition_counts,
    scan,
    time_window,
)
from streamproc.settings import Settings
from streamproc.topology import Topology

INGEST = "ingest"  # the --destination name of streamproc.dlq.ingest
MESSAGE_CHARS = 80
TRIM_SLACK = 1000


# ------------------------------------------------------------------------------ entries


@dataclass
class DlqEntry:
    """One record of a dead-letter topic."""

    dlq: str  # destination slug, or "ingest"
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None
    doc: dict[str, Any] | None  # the dead_letter() document; None when unreadable
    error: str | None = None  # why doc is None

    @classmethod
    def from_message(cls, dlq: str, m: Any) -> DlqEntry:
        ts = m.timestamp if getattr(m, "timestamp", None) and m.timestamp > 0 else None
        try:
            doc = orjson.loads(m.value) if m.value is not None else None
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as e:
            return cls(dlq, m.topic, m.partition, m.offset, m.key, ts, None,
                       f"unreadable dead-letter record: {e}")
        return cls(dlq, m.topic, m.partition, m.offset, m.key, ts, doc)

    @property
    def at(self) -> float:
        """dead_lettered_at, else the Kafka record time."""
        v = (self.doc or {}).get("dead_lettered_at")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return (self.timestamp_ms or 0) / 1000.0

    def _get(self, name: str) -> Any:
        return (self.doc or {}).get(name)

    @property
    def stage(self) -> str:
        return str(self._get("stage") or ("?" if self.doc is not None else "unreadable"))

    @property
    def reason(self) -> str:
        return str(self._get("reason") or ("unreadable" if self.doc is None else "?"))

    @property
    def status(self) -> int | None:
        s = self._get("status")
        return s if isinstance(s, int) and not isinstance(s, bool) else None

    @property
    def attempts(self) -> int:
        a = self._get("attempts")
        return a if isinstance(a, int) and not isinstance(a, bool) else 0

    @property
    def record(self) -> dict[str, Any] | None:
        r = self._get("record")
        return r if isinstance(r, dict) else None

    @property
    def source(self) -> dict[str, Any]:
        s = self._get("source")
        return s if isinstance(s, dict) else {}

    @property
    def where(self) -> str:
        """destination, or ingest/<input> and routing/<topic> for the ingest topic."""
        if self.dlq != INGEST:
            return self.dlq
        if self.stage == "ingest" and self.source.get("input"):
            return f"ingest/{self.source['input']}"
        if self.stage == "routing":
            return "ingest/routing"
        return INGEST

    @property
    def ident(self) -> str:
        """The delivery id for a delivery record, else the record key."""
        rec = self.record
        if rec is not None and isinstance(rec.get("id"), str):
            return rec["id"]
        if self.key is None:
            return "-"
        return self.key.decode("utf-8", "replace")

    @property
    def message(self) -> str:
        if self.doc is None:
            return self.error or ""
        text = str(self._get("message") or "")
        excerpt = self._get("response_excerpt")
        if excerpt and str(excerpt).strip() not in text:
            text = f"{text} | {excerpt}" if text else str(excerpt)
        return text

    def sort_key(self) -> tuple[float, str, int, int]:
        return (self.at, self.topic, self.partition, self.offset)

    def to_json(self) -> bytes:
        meta = {"destination": self.dlq, "topic": self.topic, "partition": self.partition,
                "offset": self.offset,
                "key": None if self.key is None else self.key.decode("utf-8", "replace"),
                "timestamp": self.timestamp_ms}
        if self.doc is None:
            return orjson.dumps({"dlq": meta, "error": self.error})
        return orjson.dumps({"dlq": meta, **self.doc})


def dlq_topics(topology: Topology, destination: str | None) -> list[tuple[str, str]]:
    """[(dlq name, topic)] for --destination (one name, a comma-separated list, or all)."""
    names = list(topology.destinations) + [INGEST]
    want = [d.strip() for d in destination.split(",") if d.strip()] if destination else names
    bad = [d for d in want if d not in names]
    if bad:
        raise UsageError(f"--destination {', '.join(bad)}: not one of {'|'.join(names)}")
    out = []
    for d in want:
        topic = (topology.internal["dead_letter"].name if d == INGEST
                 else topology.destinations[d].dead_letter.name)
        out.append((d, topic))
    return out


@dataclass(frozen=True)
class DlqFilter:
    reason: str | None = None
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # unix seconds, inclusive

    def matches(self, e: DlqEntry) -> bool:
        if self.reason is not None and e.reason != self.reason:
            return False
        if self.since is not None and e.at < self.since:
            return False
        if self.until is not None and e.at > self.until:
            return False
        return True


class Selection:
    """The oldest `limit` matching entries (limit 0: all), and how many matched."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.matched = 0
        self._items: list[DlqEntry] = []

    def add(self, e: DlqEntry) -> None:
        self.matched += 1
        self._items.append(e)
        if self.limit and len(self._items) >= 2 * self.limit + TRIM_SLACK:
            self._trim()

    def _trim(self) -> None:
        self._items.sort(key=DlqEntry.sort_key)
        if self.limit:
            del self._items[self.limit:]

    @property
    def entries(self) -> list[DlqEntry]:
        self._trim()
        return list(self._items)

    @property
    def left_out(self) -> int:
        return self.matched - len(self.entries)


# ------------------------------------------------------------------------------ output


def _cell(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


COLUMNS = ("TIME", "DESTINATION", "REASON", "STATUS", "ATTEMPTS", "ID/KEY", "MESSAGE")


def table_rows(entries: Iterable[DlqEntry]) -> list[tuple[str, ...]]:
    return [(format_time(e.at), e.where, e.reason,
             str(e.status) if e.status is not None else "-",
             str(e.attempts) if e.attempts else "-", _cell(e.ident, 40),
             _cell(e.message, MESSAGE_CHARS)) for e in entries]


def format_table(entries: Iterable[DlqEntry]) -> list[str]:
    rows = table_rows(entries)
    widths = [max([len(COLUMNS[i])] + [len(r[i]) for r in rows]) for i in range(len(COLUMNS))]
    out = []
    for row in [COLUMNS, *rows]:
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return out


# ------------------------------------------------------------------------------ redrive plan


@dataclass
class Redrive:
    """Where one dead-letter record goes back to."""

    entry: DlqEntry
    kind: str  # delivery | ingest | routing
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None  # None: by key (the partitioner the workers use)
    dedup: tuple[Any, ...] = ()
    headers_from: tuple[str, int, int] | None = None  # raw record to copy headers/time from
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int | None = None


class Skip(Exception):
    """The record cannot be re-driven; the message says why."""


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _original(e: DlqEntry) -> bytes:
    raw = original_bytes(e.doc or {})
    if raw is not None:
        return raw
    if (e.doc or {}).get("original_truncated"):
        raise Skip(f"the original ({(e.doc or {}).get('original_size')} bytes) was too large "
                   f"to keep whole; re-produce it from its source")
    raise Skip("the dead letter has no original bytes")


def plan_redrive(e: DlqEntry, topology: Topology) -> Redrive:
    """The redrive of one entry (pure); raises Skip."""
    if e.doc is None:
        raise Skip(e.error or "unreadable")
    src = e.source
    if e.stage == "delivery":
        spec = topology.destinations.get(e.dlq)
        if spec is None:
            raise Skip(f"delivery record in {e.topic}, which belongs to no destination")
        if not spec.enabled:
            raise Skip(f"destination {e.dlq} is disabled in {topology.path}")
        rec = e.record
        if rec is not None:
            try:
                sink = SinkRecord.from_dict(rec)
            except (KeyError, TypeError, ValueError) as exc:
                raise Skip(f"the dead-lettered sink record is incomplete ({exc!r})") from None
            if sink.destination != e.dlq:
                raise Skip(f"record for {sink.destination} found in {e.topic}")
            return Redrive(e, "delivery", spec.sink.name, sink.key.encode(), sink.dumps(),
                           dedup=("id", sink.id))
        raw = _original(e)
        part = _int(src.get("partition")) if src.get("topic") == spec.sink.name else None
        return Redrive(e, "delivery", spec.sink.name, e.key, raw, partition=part,
                       dedup=("src", src.get("topic"), src.get("partition"), src.get("offset")))
    raw = _original(e)
    if e.stage == "ingest":
        name = src.get("input")
        spec = topology.inputs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise Skip(f"unknown input {name!r}")
        part, offset = _int(src.get("partition")), _int(src.get("offset"))
        same_topic = src.get("topic") == spec.name
        return Redrive(
            e, "ingest", spec.name, e.key, raw, partition=part if same_topic else None,
            dedup=("src", src.get("topic"), src.get("partition"), src.get("offset")),
            headers_from=(spec.name, part, offset)
            if same_topic and part is not None and offset is not None else None)
    if e.stage == "routing":
        internal = {topology.internal[k].name for k in ("by_user", "by_contact")}
        if src.get("topic") not in internal:
            raise Skip(f"routing dead letter from {src.get('topic')!r}, not an internal topic")
        return Redrive(e, "routing", src["topic"], e.key, raw,
                       partition=_int(src.get("partition")),
                       dedup=("src", src.get("topic"), src.get("partition"), src.get("offset")))
    raise Skip(f"unknown stage {e.stage!r}")


# ------------------------------------------------------------------------------ reading


async def read_dlq(settings: Settings, topology: Topology, destination: str | None,
                   filt: DlqFilter, limit: int, *, progress: bool = True,
                   ) -> tuple[Selection, list[str]]:
    """(selection, notes): every matching record up to each topic's current end."""
    wanted = dlq_topics(topology, destination)
    counts = await partition_counts(settings, [t for _, t in wanted])
    notes = [f"{t} does not exist (run `streamproc topics apply`)"
             for _, t in wanted if t not in counts]
    sel = Selection(limit)
    consumer = new_consumer(settings, "dlq")
    await consumer.start()
    try:
        for name, topic in wanted:
            if topic not in counts:
                continue
            since_ms = int(filt.since * 1000) if filt.since is not None else None
            # Record time >= dead_lettered_at, so records before since's offset cannot match.
            ranges = await compute_ranges(consumer, topic, counts[topic], from_ms=since_ms)
            total = sum(r.count for r in ranges)
            bar = (Progress(f"dlq {topic}", total, quiet_when_fast=True)
                   if progress and total else None)
            async for m in scan(consumer, ranges, bar):
                e = DlqEntry.from_message(name, m)
                if filt.matches(e):
                    sel.add(e)
            if bar is not None:
                bar.finish()
    finally:
        await consumer.stop()
    return sel, notes


async def _recover_headers(settings: Settings, plans: list[Redrive]) -> int:
    """Copy headers and timestamps of the raw input records into ingest redrives; returns how
    many could not be recovered (no longer retained, or the offset now holds other bytes)."""
    need = [p for p in plans if p.headers_from is not None]
    if not need:
        return 0
    wanted: dict[TopicPartition, set[int]] = {}
    for p in need:
        topic, part, offset = p.headers_from  # type: ignore[misc]
        wanted.setdefault(TopicPartition(topic, part), set()).add(offset)
    consumer = new_consumer(settings, "dlq-headers")
    await consumer.start()
    try:
        found = await fetch_exact(consumer, wanted)
    finally:
        await consumer.stop()
    missing = 0
    for p in need:
        m = found.get(p.headers_from)  # type: ignore[arg-type]
        if m is None or m.value != p.value:
            missing += 1
            continue
        p.headers = [(k, v) for k, v in (m.headers or ()) if k != FORCE_HEADER]
        p.timestamp_ms = m.timestamp if m.timestamp and m.timestamp > 0 else None
    return missing


async def redrive(settings: Settings, topology: Topology, entries: list[DlqEntry], out: Any,
                  ) -> tuple[Counter, int]:
    """Re-produce the entries; prints one line each. Returns (redriven by kind, skipped)."""
    plans: list[Redrive] = []
    seen: set[tuple[Any, ...]] = set()
    skipped = dups = 0
    for e in entries:
        try:
            p = plan_redrive(e, topology)
        except Skip as why:
            skipped += 1
            print(f"skip     {format_time(e.at)}  {e.where}  {e.reason}  {_cell(e.ident, 40)}"
                  f"  ({e.topic}:{e.partition}:{e.offset}): {why}", file=out)
            continue
        if p.dedup in seen:
            dups += 1
            continue
        seen.add(p.dedup)
        plans.append(p)
    counts = await partition_counts(settings, {p.topic for p in plans})
    for p in plans:
        if p.topic not in counts:
            raise RuntimeError(f"topic {p.topic} does not exist (run `streamproc topics apply`)")
        if p.partition is not None and p.partition >= counts[p.topic]:
            p.partition = None
    lost = await _recover_headers(settings, plans)
    done: Counter = Counter()
    if plans:
        producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all",
                                    enable_idempotence=True,
                                    client_id=f"{settings.client_id}-dlq-redrive")
        await producer.start()
        try:
            futs = [await producer.send(p.topic, value=p.value, key=p.key, partition=p.partition,
                                        timestamp_ms=p.timestamp_ms, headers=p.headers or None)
                    for p in plans]
            await asyncio.gather(*futs)
        finally:
            await producer.stop()
    for p in plans:
        e = p.entry
        done[p.kind] += 1
        print(f"redriven {format_time(e.at)}  {e.where}  {e.reason}  {_cell(e.ident, 40)}"
              f"  ({e.topic}:{e.partition}:{e.offset}) -> {p.topic}", file=out)
    if dups:
        print(f"{dups} dead letter(s) for records already re-driven above were left out "
              f"(same delivery id or same source offset)", file=out)
    if lost:
        print(f"warning: the original headers/time of {lost} ingest record(s) are no longer on "
              f"the raw topic; re-driven without them", file=sys.stderr)
    return done, skipped


# ------------------------------------------------------------------------------ command


async def run_dlq_command(settings: Settings, topology: Topology, args: argparse.Namespace,
                          ) -> int:
    try:
        return await _dlq_command(settings, topology, args)
    except (KafkaError, RuntimeError, OSError) as e:
        print(f"streamproc dlq: {error_text(e)}", file=sys.stderr)
        return 1


async def _dlq_command(settings: Settings, topology: Topology, args: argparse.Namespace,
                       ) -> int:
    out = sys.stdout
    try:
        since, until = time_window(args.since, args.until, now=time.time())
        dlq_topics(topology, args.destination)
        if args.limit is not None and args.limit < 0:
            raise UsageError("--limit must be >= 0 (0: no limit)")
    except UsageError as e:
        print(f"streamproc dlq: {e}", file=sys.stderr)
        return 2
    filt = DlqFilter(reason=args.reason, since=since, until=until)
    sel, notes = await read_dlq(settings, topology, args.destination, filt,
                                args.limit or 0)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    entries = sel.entries
    verb = "shown" if args.action == "list" else "re-driven"
    if args.action == "list":
        if args.json:
            for e in entries:
                out.write(e.to_json().decode() + "\n")
        elif entries:
            for line in format_table(entries):
                print(line, file=out)
        print(f"{len(entries)} dead-lettered record(s) {verb}" + (
            f", {sel.left_out} more match (raise --limit; 0 = all)" if sel.left_out else ""),
            file=sys.stderr)
        return 0
    done, skipped = await redrive(settings, topology, entries, out)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(done.items()))
    print(f"re-driven {sum(done.values())} record(s)" + (f" ({kinds})" if kinds else "")
          + (f", {skipped} skipped" if skipped else "")
          + (f"; {sel.left_out} more match, not re-driven (raise --limit; 0 = all)"
             if sel.left_out else ""), file=out)
    if done.get("delivery"):
        print("delivery records go through the ledger again: an id the API accepted since "
              "(e.g. by an earlier redrive) is not sent twice", file=out)
    return 0
