"""Shared by the delivery-side outcome tests (test_review_try_outcomes, test_rel_review): one
"fake" destination's records, a Deliverer that records `try` outcomes, deliver_batch's
runtime and ledger surfaces, and the sink events that carry the records."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx

from delivery_fakes import WALL_OFFSET, build_client, destination, settings
from streamproc.core.force_header import FORCE_HEADER
from streamproc.core.metrics import Metrics
from streamproc.core.outcome_codec import decode_docs
from streamproc.core.records import SinkRecord
from streamproc.delivery.engine import Deliverer
from streamproc.worker.outcomes import AttemptRecorder

OK = httpx.Response(200, json={})
DOWN = httpx.Response(503, text="upstream unavailable")


def rec(n: int) -> SinkRecord:
    return SinkRecord(destination="fake", op="send", key=f"user-{n}", id=f"r{n}",
                      payload={"n": n}, source={"topic": "t", "offset": n, "message_id": f"m{n}"},
                      created_at=WALL_OFFSET + 990.0)


def deliverer(api: Any, clock: Any, ledger: Any, outcomes: Any, **kw: Any) -> Deliverer:
    s = settings(**kw)
    dest = destination()
    client = build_client(dest, s, transport=httpx.MockTransport(api))
    return Deliverer(dest, s, client, ledger, Metrics(), clock=clock, sleep=clock.sleep,
                     wall=clock.wall, rng=lambda: 0.5,
                     on_attempt=AttemptRecorder(outcomes, "fake"))


def docs_of(outs: list[Any], topic: str = "outcomes") -> list[dict[str, Any]]:
    return [d for t, _, v, *_ in outs if t == topic for d in decode_docs(v)]


class LedgerSurface:
    """TableLedger's batch surface over an InMemoryLedger that survives a 'restart' (the
    RocksDB store / changelog: mark writes the local store at once)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def begin(self, events: Any) -> None:
        pass

    def end(self) -> None:
        pass

    def seen_many(self, ids: Any) -> set[str]:
        return {i for i in ids if self.inner.seen(i)}

    def seen(self, i: str) -> bool:
        return self.inner.seen(i)

    def mark(self, ids: Any, at: float) -> None:
        self.inner.mark(ids, at)

    async def flush(self) -> None:
        pass


def runtime(sent: list[Any]) -> Any:
    async def send_all(out: list[Any]) -> None:
        sent.extend(out)

    dests = {"fake": SimpleNamespace(dead_letter=SimpleNamespace(name="dlq.fake"))}
    return SimpleNamespace(topology=SimpleNamespace(destinations=dests), metrics=Metrics(),
                           output=SimpleNamespace(send_all=send_all))


def sink_events(*records: SinkRecord, first_offset: int = 0, forced: bool = False) -> list[Any]:
    headers = [(FORCE_HEADER, b"1")] if forced else None
    return [SimpleNamespace(message=SimpleNamespace(
        value=r.dumps(), key=r.key.encode(), headers=headers, topic="sink", partition=0,
        offset=first_offset + n)) for n, r in enumerate(records)]


def repairing_deliverer(meta_status: int, outcomes: Any) -> Deliverer:
    """A Deliverer whose record gets 400 "undefined property", and whose repair (a
    contactmetadata request) gets `meta_status`; two attempts per call."""
    from delivery_fakes import FakeApi, FakeClock
    from streamproc.delivery.ledger import InMemoryLedger
    from streamproc.destinations.request import HttpRequest

    meta = HttpRequest("POST", "/meta", {"Name": "plan"}, [], "contactmetadata")
    api = FakeApi()
    api.respond = lambda doc: (httpx.Response(meta_status, text="meta refused")
                               if doc["_path"] == "/v1/meta"
                               else httpx.Response(400, text="undefined property plan"))
    clock, s = FakeClock(), settings(max_attempts=2)
    dest = destination(repair=lambda req, code, body: [meta])
    return Deliverer(dest, s, build_client(dest, s, transport=httpx.MockTransport(api)),
                     InMemoryLedger(3600, clock=clock.wall), Metrics(), clock=clock,
                     sleep=clock.sleep, wall=clock.wall, rng=lambda: 0.5,
                     on_attempt=AttemptRecorder(outcomes, "fake"))


async def held_after_three_tries(retry_budget_s: float) -> tuple[Any, Any, Any, Deliverer]:
    """(clock, outcomes, api, deliverer): r1 tried three times against a destination that is
    down (503), then held (the outage pause); its `try` outcomes taken."""
    from delivery_fakes import FakeApi, FakeClock
    from streamproc.config.settings import load_settings
    from streamproc.delivery.ledger import InMemoryLedger
    from streamproc.worker.outcomes import Outcomes

    clock, o = FakeClock(), Outcomes(load_settings({}), "outcomes")
    api = FakeApi(DOWN)
    d = deliverer(api, clock, InMemoryLedger(3600, clock=clock.wall), o, max_attempts=3,
                  retry_budget_s=retry_budget_s)
    report = await d.deliver([rec(1)])
    assert report.held == ["r1"]
    assert [x["n"] for x in docs_of(d.on_attempt.take(report.dead))] == [1, 2, 3]
    return clock, o, api, d
