"""`streamproc dlq redrive`: where each dead-letter record goes back to (plan_redrive, pure),
the raw record's headers recovered for ingest redrives, and the re-producing itself."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from streamproc.config.kafka import client_kwargs
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.force_header import replay_headers
from streamproc.core.records import SinkRecord, original_bytes
from streamproc.ops.dlq.entries import DlqEntry, clip_cell
from streamproc.ops.outcomes_cli import outcomes_topic, redrive_docs, send_docs
from streamproc.ops.timespec import format_time
from streamproc.ops.topic_reader import fetch_exact, new_consumer, partition_counts


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
        p.headers = replay_headers(m.headers, force=False)
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
            print(f"skip     {format_time(e.at)}  {e.where}  {e.reason}  {clip_cell(e.ident, 40)}"
                  f"  ({e.topic}:{e.partition}:{e.offset}): {why}", file=out)
            continue
        if p.dedup in seen:
            dups += 1
            continue
        seen.add(p.dedup)
        plans.append(p)
    counts = await partition_counts(settings, {p.topic for p in plans}, op="WRITE")
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
            await send_docs(settings, producer, outcomes_topic(topology), redrive_docs(plans))
        finally:
            await producer.stop()
    for p in plans:
        e = p.entry
        done[p.kind] += 1
        print(f"redriven {format_time(e.at)}  {e.where}  {e.reason}  {clip_cell(e.ident, 40)}"
              f"  ({e.topic}:{e.partition}:{e.offset}) -> {p.topic}", file=out)
    if dups:
        print(f"{dups} dead letter(s) for records already re-driven above were left out "
              f"(same delivery id or same source offset)", file=out)
    if lost:
        print(f"warning: the original headers/time of {lost} ingest record(s) are no longer on "
              f"the raw topic; re-driven without them", file=sys.stderr)
    return done, skipped
