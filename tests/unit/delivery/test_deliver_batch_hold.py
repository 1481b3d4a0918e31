"""deliver_agents.deliver_batch with a paused destination (issue 14): the batch is held (Held,
read again after the next probe is due), not acknowledged; what was decided meanwhile (dead
letters, delivered ids) is on the broker and in the ledger first, so the re-read repeats
nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from delivery_fakes import FakeApi, record, rig, settings
from streamproc.delivery.outage import Held
from streamproc.worker.deliver_agents import deliver_batch


class Ledger:
    def __init__(self, inner):
        self.inner, self.marked, self.flushed = inner, [], 0

    def begin(self, events):
        pass

    def end(self):
        pass

    def mark(self, ids, at):
        self.marked += list(ids)
        self.inner.mark(ids, at)

    async def flush(self):
        self.flushed += 1


def _runtime(sent):
    async def send_all(out):
        sent.extend(out)

    dests = {"fake": SimpleNamespace(dead_letter=SimpleNamespace(name="dlq.fake"))}
    return SimpleNamespace(topology=SimpleNamespace(destinations=dests),
                           metrics=None, output=SimpleNamespace(send_all=send_all))


def _events(*records):
    return [SimpleNamespace(message=SimpleNamespace(
        value=r.dumps(), key=r.key.encode(),
        headers=None, topic="sink", partition=0, offset=n)) for n, r in enumerate(records)]


def test_a_batch_of_a_paused_destination_is_held_after_its_dead_letters_and_marks():
    api = FakeApi()
    # r1 rejected for good, r2 accepted, r3 refused (401): the destination pauses (a 5xx in a
    # call where the API answered other requests dead-letters r3 instead of pausing)
    api.respond = lambda doc: {"r1": httpx.Response(400), "r2": httpx.Response(200, json={}),
                               }.get(doc["items"][0]["id"], httpx.Response(401))
    r = rig(api, settings(max_attempts=2, retry_budget_s=3600.0))
    ledger, sent = Ledger(r.ledger), []
    with pytest.raises(Held) as held:
        asyncio.run(deliver_batch(_runtime(sent), "fake", _events(record(1), record(2), record(3)),
                                  r.deliverer, ledger))
    assert 0 < held.value.hold_s <= 30.0  # until the next probe (AUTH_PROBE_INTERVAL_S)
    assert [topic for topic, _, _ in sent] == ["dlq.fake"]  # r1's dead letter, once
    assert ledger.marked == ["r1"] and ledger.flushed == 1  # the dead one, by the agent
    assert r.ledger.seen("r1") and r.ledger.seen("r2")  # r2 by the engine when accepted
    # read again: r1 and r2 are skipped by the ledger, r3 is held again without a request
    calls = len(api.calls)
    with pytest.raises(Held):
        asyncio.run(deliver_batch(_runtime(sent), "fake", _events(record(1), record(2), record(3)),
                                  r.deliverer, ledger))
    assert len(api.calls) == calls and len(sent) == 1
