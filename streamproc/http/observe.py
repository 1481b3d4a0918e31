"""Metrics refreshers run before each scrape (and by the status page): consumer lag per
topic-partition, approximate key counts per state table and readiness. They only read what
the worker already holds in memory (no broker round trip), so a scrape never blocks the event
loop.

- consumer_lag{topic, partition} = highwater - committed offset, for the partitions of the
  topics streamproc's agents consume (inputs, internal topics, sinks) that are assigned to
  this worker. The highwater is the one the consumer saw on its last fetch (it fetches at
  least every broker fetch wait), the committed offset is faust's last commit (next offset
  to read). Changelog partitions are left out: their progress is table recovery, not lag.
- table_keys{table} = keys over the table's active partition stores. Small stores are counted
  exactly (a key-only scan, faust's changelog-offset key left out); large ones use RocksDB's
  `rocksdb.estimate-num-keys`, which is approximate: a key overwritten since the last
  compaction counts more than once.
- ready = 1 when the worker is ready, else 0: the answer of GET /ready at the scrape
  (streamproc.http.web.is_ready, the one function both use).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamproc import runtime
from streamproc.worker.lags import assigned_source_partitions, consumer_lags, consumer_of

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

log = logging.getLogger(__name__)

ESTIMATE_KEYS = "rocksdb.estimate-num-keys"
EXACT_BELOW = 20_000  # partition stores estimated below this are counted key by key (~4 ms)
EXACT_BUDGET = 100_000  # at most this many keys counted exactly per refresh, over all tables


def install(rt: Runtime) -> None:
    """Register the refreshers on rt.metrics (called once from create_app)."""
    rt.metrics.on_refresh(refresh_lag)
    rt.metrics.on_refresh(refresh_checkpoint)
    rt.metrics.on_refresh(refresh_table_keys)
    rt.metrics.on_refresh(refresh_ready)
    for table in rt.tables.values():
        count_changelog_reads(rt, table)


def count_changelog_reads(rt: Runtime, table: Any) -> None:
    """Count the changelog records faust applies to `table` (changelog_records_read): reads of
    an active partition happen only while it recovers (restart, rebalance, failover), reads
    of a standby partition keep a standby replica warm. Uses faust's on_changelog_event hook
    (the Table(on_changelog_event=...) argument, which streamproc does not otherwise pass)."""
    counters = {role: rt.metrics.changelog_records_read.labels(table.name, role)
                for role in ("recovery", "standby")}

    async def count(event: Any) -> None:
        recovery = rt.app.tables.recovery
        tp = event.message.tp
        if tp in recovery.active_tps:
            counters["recovery"].inc()
        elif tp in recovery.standby_tps:
            counters["standby"].inc()

    runtime.on_changelog_event(table, count)


def refresh_checkpoint(rt: Runtime) -> None:
    """batch_retries per partition being read again, and records faust's streams got."""
    consumer = consumer_of(rt)
    retries = rt.metrics.batch_retries
    retries.clear()
    if consumer is not None:
        rt.metrics.faust_stream_records.set(consumer.faust_stream_records)
        for tp, failures in consumer.checkpoint.failing().items():
            retries.labels(tp.topic, str(tp.partition)).set(failures)


def refresh_lag(rt: Runtime) -> None:
    lags = consumer_lags(rt)
    gauge = rt.metrics.consumer_lag
    gauge.clear()  # partitions revoked by a rebalance must not keep their last value
    for (topic, partition), lag in lags.items():
        gauge.labels(topic, str(partition)).set(lag)


def table_key_counts(rt: Runtime) -> dict[str, int]:
    """{faust table name: approximate keys} over the active partitions of each table."""
    out: dict[str, int] = {}
    budget = [EXACT_BUDGET]
    for table in rt.tables.values():
        dbs = runtime.active_dbs(table)  # None until started, or not RocksDB
        if dbs is not None:
            out[table.name] = _store_keys(dbs, runtime.offset_key(table), budget)
    return out


def _store_keys(dbs: list[Any], offset_key: bytes, budget: list[int]) -> int:
    total = 0
    try:
        for db in dbs:
            try:
                estimate = int(db.property_int_value(ESTIMATE_KEYS) or 0)
            except AttributeError:  # python-rocksdb driver
                estimate = int(db.get_property(ESTIMATE_KEYS.encode()) or 0)
            if estimate <= EXACT_BELOW and estimate <= budget[0]:
                budget[0] -= estimate
                total += sum(1 for key in db.keys() if key != offset_key)
            else:  # faust keeps the changelog offset under one key of each store
                total += max(0, estimate - (db.get(offset_key) is not None))
    except Exception:  # a partition store closed by a rebalance in between
        log.debug("table key count failed", exc_info=True)
    return total


def refresh_table_keys(rt: Runtime) -> None:
    for name, keys in table_key_counts(rt).items():
        rt.metrics.table_keys.labels(name).set(keys)


def refresh_ready(rt: Runtime) -> None:
    from streamproc.http.web import is_ready  # the /ready answer itself

    try:
        ready, _detail = is_ready(rt)
    except Exception:  # never leave a stale 1 behind (Metrics.refresh logs the error)
        rt.metrics.ready.set(0)
        raise
    rt.metrics.ready.set(1 if ready else 0)
