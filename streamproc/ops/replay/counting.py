"""The counting pass of `streamproc replay`: RangeStats per partition and operation (and the last
copy of each delivery id, which a forced sink replay re-sends once), and the `--dry-run` report,
which reads the delivery ledger's changelog to tell how many ids the ledger would skip."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamproc.config.settings import Settings
from streamproc.core.events.inputs import parse_input
from streamproc.ops.topic_reader import (Progress, compute_ranges, new_consumer, partition_counts,
                                         scan)


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


def ledger_changelog(settings: Settings, slug: str) -> str:
    """The changelog topic of a destination's delivery ledger (faust: <id>-<table>-changelog)."""
    return f"{settings.app_id}-ledger-{slug}-changelog"


def _counts(c: Counter) -> str:
    """`a 3, b 1`: most frequent first."""
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))


async def _read_ledger(settings: Settings, slug: str, wanted: set[str], now: float,
                       ) -> tuple[set[str] | None, str]:
    """Ids of `wanted` the ledger holds within the retention window, from its changelog topic;
    (None, why) when it cannot be read."""
    from streamproc.delivery.ledger import as_unix_seconds

    topic = ledger_changelog(settings, slug)
    values = await _last_values(settings, topic, lambda key: key in wanted)
    if values is None:
        return None, (f"ledger changelog {topic} not found (no worker ran with "
                      f"STREAMPROC_APP_ID={settings.app_id}?)")
    retention = settings.routing.ledger_retention_hours * 3600
    seen = {k: None if v is None else as_unix_seconds(v) for k, v in values.items()}
    fresh = {k for k, at in seen.items() if at is not None and now - at < retention}
    return fresh, topic


async def _last_values(settings: Settings, topic: str, keep: Any = None,
                       ) -> dict[str, bytes | None] | None:
    """The last value of each key (`keep(key)` true) of a changelog topic; None without it."""
    parts = (await partition_counts(settings, [topic])).get(topic)
    if not parts:
        return None
    values: dict[str, bytes | None] = {}
    consumer = new_consumer(settings, "replay-changelog")
    await consumer.start()
    try:
        ranges = await compute_ranges(consumer, topic, parts)
        progress = Progress(f"changelog {topic}", sum(r.count for r in ranges))
        async for m in scan(consumer, ranges, progress):
            key = m.key.decode("utf-8", "replace") if m.key is not None else None
            if key is not None and (keep is None or keep(key)):
                values[key] = m.value
        progress.finish()
    finally:
        await consumer.stop()
    return values


async def held_in_state(settings: Settings) -> Counter:
    """Inputs held now (waiting for state another topic updates), by "source/waits_for", from
    the state tables' changelogs (the last value of each key)."""
    from streamproc.core.routing.holds import waiting

    held: Counter = Counter()
    for table in ("known-users", "contacts"):
        values = await _last_values(settings, f"{settings.app_id}-{table}-changelog") or {}
        for value in values.values():
            if value is not None and b'"pending":[{' in value:
                pending = orjson.loads(value).get("pending") or []
                held.update(f"{source}/{reason}" for source, reason in waiting(pending))
    return held


async def report_dry_run(settings: Settings, stats: RangeStats | None, now: float, out: Any,
                         *, kind: str, name: str, force: bool) -> None:
    """Print what replaying the counted range would do; `kind` is "input" or "sink", `name`
    the input name or destination slug (as in ReplayJob)."""
    assert stats is not None
    per_part = ", ".join(f"p{p} {n}" for p, n in sorted(stats.per_partition.items()))
    print(f"  per partition: {per_part}", file=out)
    if kind == "input":
        events = sum(stats.by_op.values())
        print(f"  would re-ingest {stats.total} record(s): {events} event(s)"
              + (f" ({_counts(stats.by_op)})" if events else ""), file=out)
        if stats.dead_letters:
            print(f"  {sum(stats.dead_letters.values())} would be dead-lettered again at ingest "
                  f"({_counts(stats.dead_letters)})", file=out)
        print("  what each destination gets depends on the routing state; re-routed records "
              "keep their delivery ids, and the ledger skips those already delivered", file=out)
        held = await held_in_state(settings)
        print(f"  held now, waiting for state: {sum(held.values())}"
              + (f" ({_counts(held)})" if held else "") + "; replayed inputs whose state is "
              f"not there yet are held up to {settings.routing.hold_seconds:g}s "
              "(STREAMPROC_HOLD_SECONDS), not dropped", file=out)
        print("  dry run: nothing was produced", file=out)
        return
    distinct = len(stats.ids)
    print(f"  {stats.total} sink record(s), {distinct} distinct delivery id(s)"
          + (f" ({_counts(stats.by_op)})" if stats.by_op else ""), file=out)
    if stats.unreadable:
        print(f"  {stats.unreadable} unreadable record(s) (the worker dead-letters them)",
              file=out)
    seen, where = await _read_ledger(settings, name, set(stats.ids), now)
    if seen is None:
        print(f"  ledger: unknown ({where})", file=out)
        if force:
            print(f"  would re-send to {name}: {distinct} (--force)", file=out)
        else:
            print(f"  would re-send to {name}: at most {distinct} (the ledger skips ids "
                  f"already delivered)", file=out)
    else:
        print(f"  ledger ({where}): {len(seen)} of the {distinct} id(s) delivered within "
              f"{settings.routing.ledger_retention_hours:g}h", file=out)
        if force:
            print(f"  would re-send to {name}: {distinct} (--force; "
                  f"{len(seen)} of them again)", file=out)
        else:
            print(f"  would re-send to {name}: {distinct - len(seen)} "
                  f"(skipped by the ledger: {len(seen)})", file=out)
    print("  dry run: nothing was produced", file=out)
