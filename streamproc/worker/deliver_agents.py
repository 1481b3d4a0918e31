"""One delivery agent per enabled destination: takes a batch from its sink topic, delivers it
through the shared engine, dead-letters what failed for good, and only then lets faust
acknowledge the batch. A batch its destination holds (outage pause, delivery/outage.py) is
read again from the checkpoint when the next probe is due. The delivery ledger is a faust table co-partitioned with the sink, read
and written per batch and partition (streamproc/worker/table_ledger.py); the agent purges its
expired entries between batches (LedgerPurger)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from streamproc import runtime
from streamproc.core.force_header import is_forced
from streamproc.core.records import SinkRecord, dead_letter
from streamproc.delivery.ledger import as_unix_seconds
from streamproc.delivery.outage import Held
import streamproc.worker.outcomes
from streamproc.worker.batching import LEDGER_STORE_OPTIONS, batches_of, table_kwargs
from streamproc.worker.table_ledger import TableLedger

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

log = logging.getLogger(__name__)


# Ledger purge bounds: one purge call examines at most PURGE_SCAN_KEYS keys (split between the
# partitions of the batch) and deletes at most PURGE_MAX_DELETES, at most once per interval.
PURGE_INTERVAL_S = 60.0
PURGE_SCAN_KEYS = 20_000
PURGE_MAX_DELETES = 5_000
Decided = dict[str, tuple[str, int, int]]  # delivery id -> topic, partition, offset read at
MAX_DECIDED = 100_000  # ids a destination's agent remembers from held batches (deliver_batch)


class LedgerPurger:
    """Deletes ledger entries older than the retention window, so the table (RocksDB) and its
    compacted changelog stop growing. Partition-correct by construction: it runs in the delivery
    agent between batches and only touches the partitions of the batch it just delivered (owned
    by this worker, active), scanning each partition's own RocksDB store and writing tombstones
    (store and changelog, runtime.TableWriter) to that partition. Each call is bounded (keys
    scanned and deleted) and resumes where the previous scan of that partition stopped; a
    partition no batch touches receives no new entries either. A purge that fails is logged
    and never stops delivery."""

    def __init__(self, writer: runtime.TableWriter, retention_s: float, *,
                 interval_s: float | None = None,
                 scan_keys: int = PURGE_SCAN_KEYS, max_deletes: int = PURGE_MAX_DELETES,
                 wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writer, self.table, self.retention_s = writer, writer.table, retention_s
        self.interval_s = (min(PURGE_INTERVAL_S, retention_s / 4) if interval_s is None
                           else interval_s)
        self.scan_keys, self.max_deletes = scan_keys, max_deletes
        self._wall, self._clock = wall, clock
        self._next_at = clock() + self.interval_s
        self.cursors: dict[int, bytes] = {}  # partition -> first key the next scan looks at
        self.deleted = 0

    async def maybe_purge(self, events: Iterable[Any]) -> int:
        """Purge when the interval has passed; returns how many entries were deleted."""
        if self._clock() < self._next_at:
            return 0
        self._next_at = self._clock() + self.interval_s
        try:
            return await self.purge({ev.message.partition for ev in events})
        except Exception:
            log.exception("ledger %s: purge failed; will try again later", self._name())
            return 0

    async def purge(self, partitions: Iterable[int], now: float | None = None) -> int:
        """Purge the given partitions of the table (active on this worker)."""
        now = self._wall() if now is None else now
        dbs = runtime.partition_dbs(self.table) if self.writer.direct() else None
        partitions = sorted(partitions)
        if not partitions or dbs is None:
            return 0  # not a RocksDB store (nothing partitioned to purge) or no producer
        offset_key = runtime.offset_key(self.table)
        per_partition = max(1, self.scan_keys // len(partitions))
        deleted = 0
        sends = []
        for partition in partitions:
            db = dbs.get(partition)
            if db is None or deleted >= self.max_deletes:
                continue
            expired = self._scan(db, partition, now, offset_key, per_partition,
                                 self.max_deletes - deleted)
            if expired:
                sends.append(self.writer.write(partition, [(key, None) for key in expired]))
                deleted += len(expired)
        await runtime.wait_all(sends)
        self.deleted += deleted
        if deleted:
            log.info("ledger %s: purged %d entries older than %.0fs", self._name(), deleted,
                     self.retention_s)
        return deleted

    def _scan(self, db: Any, partition: int, now: float, offset_key: bytes, limit: int,
              max_expired: int) -> list[bytes]:
        """Expired keys among the next `limit` keys of one partition, from its cursor on."""
        expired: list[bytes] = []
        scanned = 0
        next_key: bytes | None = None
        for key, value in db.items(from_key=self.cursors.get(partition)):
            if scanned >= limit or len(expired) >= max_expired:
                next_key = key
                break
            scanned += 1
            if key == offset_key:
                continue
            at = as_unix_seconds(value)
            if at is None or now - at >= self.retention_s:
                expired.append(key)
        if next_key is None:
            self.cursors.pop(partition, None)  # reached the end: start over next time
        else:
            self.cursors[partition] = next_key
        return expired

    def _name(self) -> str:
        return str(getattr(self.table, "name", "ledger"))


def register_delivery(rt: Runtime, topic: Callable[[Any], Any]) -> None:
    from streamproc.delivery.client import build_client
    from streamproc.delivery.engine import Deliverer
    from streamproc.destinations.registry import DESTINATIONS as MODULES

    app, settings = rt.app, rt.settings
    retention = settings.routing.ledger_retention_hours * 3600
    for slug in rt.topology.enabled:
        spec = rt.topology.destinations[slug]
        sink = topic(spec.sink)
        table = app.Table(f"ledger-{slug}", partitions=sink.partitions,
                          **table_kwargs(LEDGER_STORE_OPTIONS))
        rt.tables[f"ledger-{slug}"] = table
        ledger = TableLedger(table, retention, rt.output.started)
        dest_settings = settings.destination(slug)
        module = MODULES[slug]
        state: dict[str, Any] = {}

        def deliverer(module=module, dest_settings=dest_settings, ledger=ledger,
                      state=state, slug=slug) -> Any:
            if "deliverer" not in state:
                client = build_client(module, dest_settings)
                state["client"] = client
                outcomes = rt.outcomes
                state["deliverer"] = Deliverer(
                    module, dest_settings, client, ledger, rt.metrics, on_attempt=None
                    if outcomes is None else streamproc.worker.outcomes.AttemptRecorder(outcomes, slug))
            return state["deliverer"]

        rt.deliverers[slug] = state
        rt.metrics.on_refresh(lambda rt, slug=slug, sink=spec.sink.name: _waiting(rt, slug, sink))
        purger = LedgerPurger(ledger.writer, retention)
        rt.ledger_purgers[slug] = purger
        _delivery_agent(rt, slug, sink, spec.batch_size, dest_settings.delivery.linger_ms / 1000,
                        deliverer, ledger, purger)


def _delivery_agent(rt: Runtime, slug: str, sink: Any, batch_size: int, linger: float,
                    get_deliverer: Callable[[], Any], ledger: TableLedger,
                    purger: LedgerPurger | None = None) -> None:
    batches = batches_of(rt, sink, batch_size, max(linger, 0.01))
    decided: Decided = {}  # see deliver_batch

    async def deliver(stream: Any) -> None:
        async for taken in batches():
            with taken as events:
                await deliver_batch(rt, slug, events, get_deliverer(), ledger, decided)
            if purger is not None:  # tombstones on the broker before the next batch's marks
                await purger.maybe_purge(taken.events)

    rt.app.agent(sink, name=f"streamproc.deliver.{slug}")(deliver)


async def deliver_batch(rt: Runtime, slug: str, events: list[Any], deliverer: Any,
                        ledger: TableLedger, decided: Decided) -> None:
    """Deliver one batch of sink events; dead letters and ledger entries are on the broker
    before returning. `decided` (the agent's, in memory): the records delivered, dead-lettered
    or found in the ledger by a batch that was held, or that failed after its outputs were
    produced (the ledger's flush), each with where it was read: when that batch is read again
    they are skipped (forced ones too: they bypass the ledger), so the API is not called, nor
    a dead letter or outcome written, twice. Only those copies: a later one (a `dlq redrive`,
    a forced replay: a higher offset) is delivered, even after a revocation left the entry
    behind; dead ids never go to the ledger, so a redrive (not forced) still delivers them.
    After a restart it is empty: the worst case is one repeated dead letter (harmless)."""
    dlq = rt.topology.destinations[slug].dead_letter.name
    normal: list[SinkRecord] = []
    forced: list[SinkRecord] = []
    out, bad, read = [], [], set()
    carried: dict[str, Any] = {}
    loads = SinkRecord.loads
    for ev in events:
        m = ev.message
        try:
            rec = loads(m.value)
        except (ValueError, KeyError, TypeError) as e:
            bad.append((dlq, m.key, dead_letter(
                stage="delivery", reason="bad_sink_record", message=str(e), original=m.value,
                destination=slug,
                source={"topic": m.topic, "partition": m.partition, "offset": m.offset})))
            continue
        skip = rec.id not in read and _decided_copy(decided.get(rec.id), m)  # (a later copy
        read.add(rec.id)  # in the same pass, e.g. a redrive, is not skipped)
        if skip:
            continue
        carried[rec.id] = ev
        (forced if m.headers and is_forced(m.headers) else normal).append(rec)
    ledger.begin(carried)
    held, done, produced = False, [], False
    try:
        for batch, force in ((normal, False), (forced, True)):
            if batch:
                report = await deliverer.deliver(batch, force=force)
                out += [(dlq, d.record.key.encode(), d.to_dead_letter()) for d in report.dead]
                held = held or bool(report.held)
                done += report.delivered + [d.record.id for d in report.dead]
                done += [r.id for r in report.already]  # its `seen` outcome: written once
                recorder = getattr(deliverer, "on_attempt", None)
                if isinstance(recorder, streamproc.worker.outcomes.AttemptRecorder):
                    out += recorder.take(report.dead, report.already)  # produced with it
        if bad and not held:  # unreadable: dead-lettered once, by the pass that completes
            rt.metrics.dead_lettered.labels(slug, "mapping").inc(len(bad))
            out = bad + out
        if out:
            await rt.output.send_all(out)
        produced = True  # its dead letters and outcomes are on the broker: if what follows
        await ledger.flush()  # fails, the batch is read again, and what it decided is not
    except Exception:  # decided again (a second call, dead letter, outcomes)
        if produced:
            _decide(decided, done, carried)
        raise
    finally:
        ledger.end()
    if held:
        _decide(decided, done, carried)
        raise Held(slug, deliverer.hold_s())
    for record_id in read:  # done with them (a shorter re-read keeps the rest)
        decided.pop(record_id, None)
    if len(decided) > MAX_DECIDED:  # ids of partitions revoked while held: never read here
        decided.clear()


def _decided_copy(at: tuple[str, int, int] | None, m: Any) -> bool:
    """Whether record `m` is the copy an earlier pass decided (`at`: where that one was read),
    not a later one (a redrive, a forced replay: a higher offset)."""
    return at is not None and at[:2] == (m.topic, m.partition) and m.offset <= at[2]


def _decide(decided: Decided, ids: list[str], carried: dict[str, Any]) -> None:
    for record_id in ids:
        m = carried[record_id].message
        decided[record_id] = (m.topic, m.partition, m.offset)


def _waiting(rt: Runtime, slug: str, sink: str) -> None:
    """destination_waiting_records: the lag of the destination's sink partitions here."""
    from streamproc.worker.lags import consumer_lags

    waiting = sum(lag for (topic, _), lag in consumer_lags(rt).items() if topic == sink)
    rt.metrics.destination_waiting_records.labels(slug).set(waiting)
