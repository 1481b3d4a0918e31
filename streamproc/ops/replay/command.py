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
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from streamproc.config.kafka import client_kwargs
from streamproc.config.settings import Settings
from streamproc.core.force_header import replay_headers
from streamproc.ops.command_errors import UsageError, error_text
from streamproc.ops.outcomes_cli import outcomes_topic, replay_docs, send_docs
from streamproc.ops.replay.counting import RangeStats, report_dry_run, sink_id
from streamproc.ops.timespec import format_time, parse_time
from streamproc.ops.topic_reader import (
    PartitionRange,
    Progress,
    compute_ranges,
    describe_ranges,
    new_consumer,
    partition_counts,
    scan,
)
from streamproc.config.topology import Topology

SEND_CHUNK = 2000  # produce futures awaited per chunk


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


# ------------------------------------------------------------------------------ running


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
            await report_dry_run(settings, stats, now, out,
                                 kind=job.kind, name=job.name, force=job.force)
            return 0
        sent, dups = await _reproduce(settings, consumer, job, ranges, total, stats,
                                      outcomes=getattr(args, "outcomes_topic", None))
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


async def _reproduce(settings: Settings, consumer: AIOKafkaConsumer, job: ReplayJob,
                     ranges: list[PartitionRange], total: int, stats: RangeStats | None,
                     outcomes: Any = None) -> tuple[int, int]:
    """Produce the range back to its topic: same partition, key, value, timestamp, headers
    (streamproc-force per job). Forced sink replays send each id once (its last copy)."""
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all",
                                enable_idempotence=True, linger_ms=5,
                                client_id=f"{settings.client_id}-replay")
    await producer.start()
    sent = dups = 0
    try:
        futs: list[asyncio.Future] = []
        docs: list[dict] = []  # `replay` outcomes (streamproc trace)
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
            if outcomes:
                docs += replay_docs(job.kind, job.name, m, job.topic,
                                    forced=job.force and job.kind == "sink")
            if len(futs) >= SEND_CHUNK:
                await asyncio.gather(*futs)
                futs.clear()
                await send_docs(settings, producer, outcomes, docs)
                docs.clear()
        await asyncio.gather(*futs)
        await send_docs(settings, producer, outcomes, docs)
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
    args.outcomes_topic = outcomes_topic(topology)
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


__all__ = ["ReplayJob", "ReplayPlan", "plan_replay", "run_replay_command"]
