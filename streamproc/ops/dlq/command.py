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
import sys
import time

from aiokafka.errors import KafkaError

from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.ops.command_errors import UsageError, error_text
from streamproc.ops.dlq.entries import INGEST, DlqEntry, DlqFilter, Selection, format_table
from streamproc.ops.dlq.redrive import redrive
from streamproc.ops.timespec import time_window
from streamproc.ops.topic_reader import (Progress, compute_ranges, new_consumer, partition_counts,
                                         scan)


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


# ------------------------------------------------------------------------------ command


async def run_dlq_command(settings: Settings, topology: Topology, args: argparse.Namespace,
                          ) -> int:
    try:
        return await _dlq_command(settings, topology, args)
    except (KafkaError, RuntimeError, OSError) as e:
        from streamproc.config.kafka_access import explain

        why = explain(e, settings.kafka, topology, settings.app_id, "operator")
        print(f"streamproc dlq: {why or error_text(e)}", file=sys.stderr)
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
