"""One delivery agent per enabled destination: takes a batch from its sink topic, delivers it
through the shared engine, dead-letters what failed for good, and only then lets faust
acknowledge the batch. The delivery ledger is a faust table co-partitioned with the sink."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Callable, Iterator

from streamproc.agents import acks_only_on_success, set_current_event
from streamproc.records import SinkRecord, dead_letter

if TYPE_CHECKING:
    from streamproc.app import Runtime

log = logging.getLogger(__name__)


class PartitionedLedgerMapping(MutableMapping):
    """The ledger table seen as a plain mapping of delivery id -> unix seconds. Before each
    access it points faust's current event at the sink event that carried that id, so the
    entry lives in (and is recovered with) the same partition as the sink record."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.events: dict[str, Any] = {}

    def _bind(self, key: str) -> None:
        ev = self.events.get(key)
        if ev is not None:
            set_current_event(ev)

    def __getitem__(self, key: str) -> float:
        self._bind(key)
        raw = self.table.get(key)
        if raw is None:
            raise KeyError(key)
        return float(raw)

    def __setitem__(self, key: str, value: float) -> None:
        self._bind(key)
        self.table[key] = repr(float(value)).encode()

    def __delitem__(self, key: str) -> None:
        self._bind(key)
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.events)


def register_delivery(rt: Runtime, topic: Callable[[Any], Any]) -> None:
    from streamproc.agents import RAW_TABLE
    from streamproc.delivery.client import build_client
    from streamproc.delivery.engine import Deliverer
    from streamproc.delivery.ledger import MappingLedger
    from streamproc.destinations.registry import DESTINATIONS as MODULES

    app, settings = rt.app, rt.settings
    retention = settings.routing.ledger_retention_hours * 3600
    for slug in rt.topology.enabled:
        spec = rt.topology.destinations[slug]
        sink = topic(spec.sink)
        table = app.Table(f"ledger-{slug}", partitions=sink.partitions, **RAW_TABLE)
        rt.tables[f"ledger-{slug}"] = table
        mapping = PartitionedLedgerMapping(table)
        dest_settings = settings.destination(slug)
        module = MODULES[slug]
        state: dict[str, Any] = {}

        def deliverer(module=module, dest_settings=dest_settings, mapping=mapping,
                      state=state) -> Any:
            if "deliverer" not in state:
                client = build_client(module, dest_settings)
                state["client"] = client
                state["deliverer"] = Deliverer(
                    module, dest_settings, client, MappingLedger(mapping, retention),
                    rt.metrics)
            return state["deliverer"]

        rt.extras.setdefault("deliverers", {})[slug] = state
        _delivery_agent(rt, slug, sink, spec.batch_size, dest_settings.delivery.linger_ms / 1000,
                        deliverer, mapping)


def _delivery_agent(rt: Runtime, slug: str, sink: Any, batch_size: int, linger: float,
                    get_deliverer: Callable[[], Any], mapping: PartitionedLedgerMapping) -> None:
    async def deliver(stream: Any) -> None:
        async for events in stream.take_events(batch_size, max(linger, 0.01)):
            with acks_only_on_success(events):
                await deliver_batch(rt, slug, events, get_deliverer(), mapping)

    rt.app.agent(sink, name=f"streamproc.deliver.{slug}")(deliver)


async def deliver_batch(rt: Runtime, slug: str, events: list[Any], deliverer: Any,
                        mapping: PartitionedLedgerMapping) -> None:
    """Deliver one batch of sink events; dead letters are on the broker before returning."""
    dlq = rt.topology.destinations[slug].dead_letter.name
    normal: list[SinkRecord] = []
    forced: list[SinkRecord] = []
    out = []
    mapping.events.clear()
    for ev in events:
        m = ev.message
        try:
            rec = SinkRecord.loads(m.value)
        except (ValueError, KeyError, TypeError) as e:
            rt.metrics.dead_lettered.labels(slug, "mapping").inc()
            out.append((dlq, m.key, dead_letter(
                stage="delivery", reason="bad_sink_record", message=str(e), original=m.value,
                destination=slug,
                source={"topic": m.topic, "partition": m.partition, "offset": m.offset})))
            continue
        mapping.events[rec.id] = ev
        (forced if _is_forced(m) else normal).append(rec)
    try:
        for batch, force in ((normal, False), (forced, True)):
            if batch:
                report = await deliverer.deliver(batch, force=force)
                out += [(dlq, d.record.key.encode(), d.to_dead_letter()) for d in report.dead]
        if out:
            await rt.output.send_all(out)
    finally:
        mapping.events.clear()


def _is_forced(m: Any) -> bool:
    return any(k == "streamproc-force" and v == b"1" for k, v in (m.headers or ()))
