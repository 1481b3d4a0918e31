"""Deliverer and a ledger that answers a batch at a time: one ledger lookup per deliver() call
(seen_many) instead of one per record; forced deliveries do not look the ledger up at all."""

from __future__ import annotations

import httpx
from delivery_fakes import FakeApi, FakeClock, destination, record, settings

from streamproc.core.metrics import Metrics
from streamproc.delivery.client import build_client
from streamproc.delivery.engine import Deliverer
from streamproc.delivery.ledger import InMemoryLedger


class BatchLedger(InMemoryLedger):
    """InMemoryLedger that also answers a batch at a time, counting the calls."""

    def __init__(self, clock) -> None:
        super().__init__(3600, clock=clock)
        self.lookups: list[list[str]] = []

    def seen(self, record_id: str) -> bool:
        raise AssertionError("the engine should ask seen_many")

    def seen_many(self, record_ids):
        self.lookups.append(list(record_ids))
        return {i for i in record_ids if InMemoryLedger.seen(self, i)}


def deliverer(api: FakeApi, ledger) -> Deliverer:
    clock = FakeClock()
    s = settings(batch_size=10)
    dest = destination()
    client = build_client(dest, s, transport=httpx.MockTransport(api))
    return Deliverer(dest, s, client, ledger, Metrics(), clock=clock, sleep=clock.sleep,
                     wall=clock.wall, rng=lambda: 0.5)


async def test_one_ledger_lookup_per_batch_and_marks_as_delivered():
    api = FakeApi()
    clock = FakeClock()
    ledger = BatchLedger(clock.wall)
    ledger.mark(["r2"], clock.wall())
    d = deliverer(api, ledger)
    report = await d.deliver([record(1), record(2), record(3), record(1)])
    assert ledger.lookups == [["r1", "r2", "r3", "r1"]]
    assert report.skipped == ["r2", "r1"] and report.delivered == ["r1", "r3"]
    assert api.ids() == [["r1", "r3"]]
    forced = await d.deliver([record(2)], force=True)
    assert forced.delivered == ["r2"] and len(ledger.lookups) == 1  # forced: no lookup


async def test_a_failing_batch_lookup_sends_anyway():
    api = FakeApi()
    clock = FakeClock()
    ledger = BatchLedger(clock.wall)

    def broken(record_ids):
        raise OSError("store unavailable")

    ledger.seen_many = broken
    report = await deliverer(api, ledger).deliver([record(1), record(2)])
    assert report.delivered == ["r1", "r2"] and report.skipped == []
