"""A reliability review of the delivery changes of 492525f..bf402a8: each test failed
before its fix."""

from __future__ import annotations


import httpx
import pytest

from outcome_fakes import (DOWN, OK, LedgerSurface, deliverer, docs_of,
                           held_after_three_tries, rec, repairing_deliverer, runtime,
                           sink_events)
from delivery_fakes import FakeApi, FakeClock
from streamproc.config.settings import load_settings
from streamproc.delivery.ledger import InMemoryLedger
from streamproc.delivery.outage import Held
from streamproc.worker.deliver_agents import deliver_batch
from streamproc.worker.outcomes import Outcomes


# -- 1. `decided` filled on a failure after which the batch is not read again here ------


class _FailedFlush(LedgerSurface):
    """The changelog flush fails (broker trouble); the batch's partitions are rewound, but a
    rebalance (often caused by the same broker trouble) revokes the partition before the
    re-read: the batch is NOT read again by this worker, so `decided` is never cleaned."""
    cancel = 1

    async def flush(self):
        if self.cancel:
            self.cancel -= 1
            raise RuntimeError("changelog write failed")


async def test_a_redrive_after_a_failed_flush_and_a_revocation_is_delivered():
    clock = FakeClock()
    ledger = _FailedFlush(InMemoryLedger(3600, clock=clock.wall))
    api = FakeApi(httpx.Response(400, text='{"error": "bad"}'))
    d = deliverer(api, clock, ledger.inner, Outcomes(load_settings({}), "outcomes"))
    sent, decided = [], {}
    with pytest.raises(RuntimeError):  # r1 dead-lettered, the flush fails; revoked before re-read
        await deliver_batch(runtime(sent), "fake", sink_events(rec(1)), d, ledger, decided)
    assert len([x for x in sent if x[0] == "dlq.fake"]) == 1
    # hours later (partition back here, or never moved): the operator fixed the cause and
    # runs `dlq redrive`: r1's copy is a new sink record at a later offset
    api.script = [OK]
    await deliver_batch(runtime(sent), "fake", sink_events(rec(1), first_offset=500), d, ledger,
                        decided)
    assert ledger.seen("r1"), ("the redriven r1 was skipped as 'decided' and acknowledged: "
                               "neither delivered nor dead-lettered")


async def test_a_forced_replay_after_a_failed_flush_and_a_revocation_is_sent():
    clock = FakeClock()
    ledger = _FailedFlush(InMemoryLedger(3600, clock=clock.wall))
    api = FakeApi(OK)
    d = deliverer(api, clock, ledger.inner, Outcomes(load_settings({}), "outcomes"))
    sent, decided = [], {}
    with pytest.raises(RuntimeError):
        await deliver_batch(runtime(sent), "fake", sink_events(rec(2)), d, ledger, decided)
    assert len(api.calls) == 1
    # later: `streamproc replay sink.fake --force` (the vendor lost the data)
    await deliver_batch(runtime(sent), "fake", sink_events(rec(2), first_offset=900, forced=True),
                        d, ledger, decided)
    assert len(api.calls) == 2, "the forced replay was silently skipped (decided)"


# -- 2. `seen` outcomes repeated on every pass of a held batch -------------------------------


async def test_a_held_batch_writes_one_seen_outcome_per_already_delivered_record():
    clock = FakeClock()
    ledger = LedgerSurface(InMemoryLedger(3600, clock=clock.wall))
    ledger.inner.mark(["r1"], clock.wall())  # r1 delivered earlier (e.g. an input replay)
    api = FakeApi(DOWN)
    d = deliverer(api, clock, ledger.inner, Outcomes(load_settings({}), "outcomes"),
                   max_attempts=2, retry_budget_s=3600.0)
    sent, decided = [], {}
    batch = sink_events(rec(1), rec(2))
    for _ in range(5):  # the outage: the batch is read again at every probe
        with pytest.raises(Held):
            await deliver_batch(runtime(sent), "fake", batch, d, ledger, decided)
        clock.now += 60.0
    seen = [x for x in docs_of(sent) if x["k"] == "seen"]
    assert len(seen) == 1, f"{len(seen)} `seen` outcomes for m1 (one per hold cycle)"


# -- 3. attempts carried to an unrelated later call of the same id ---------------------------


async def test_a_forced_replay_of_a_record_held_earlier_starts_at_attempt_1():
    """r1 is held in an outage (3 attempts); its partition is revoked and another worker
    delivers it. Days later the partition is back and the operator force-replays r1: this
    Deliverer still has r1 in _held (never aged, cleared only past 10,000 entries) and numbers
    the new send attempt 4, its first_at days old."""
    clock, o, api, d = await held_after_three_tries(600.0)
    clock.now += 3 * 86400  # outage long over (answered by other records meanwhile)
    d.outage.answered([])
    api.script = [OK]
    report = await d.deliver([rec(1)], force=True)
    assert report.delivered == ["r1"]
    tries = [x["n"] for x in docs_of(d.on_attempt.take()) if x["k"] == "try"]
    assert tries == [1], f"the replay's first HTTP attempt is numbered {tries}"


# -- 4. a failed repair that paused the destination: the held record is reported as refused --


async def test_a_record_held_because_its_repair_met_401_is_not_recorded_as_refused():
    """The 400's repair fix gets 401: the destination pauses and the record is kept (held),
    to be sent again; its `try` (and the status page's recent failures) still say
    r='failed' ('refused'), the sibling of the transient-repair case the change fixed."""
    o = Outcomes(load_settings({}), "outcomes")
    d = repairing_deliverer(401, o)
    report = await d.deliver([rec(1)])
    assert report.held == ["r1"] and not report.dead
    docs = docs_of(d.on_attempt.take(report.dead))
    assert [(x["k"], x.get("r")) for x in docs] != [("try", "failed")], \
        "a record kept for a later call is recorded as refused"
    assert not [f for f in o.recent_failures("fake") if f.get("r") == "failed"]
