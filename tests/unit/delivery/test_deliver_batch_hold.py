"""deliver_agents.deliver_batch with a paused destination (issue 14): the batch is held (Held,
read again after the next probe is due), not acknowledged; what was decided meanwhile (dead
letters on the broker, delivered ids in the ledger, both in the agent's memory) is not repeated
by the re-read, and a dead id never enters the ledger (dlq redrive must still deliver it)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from streamproc.core.metrics import Metrics

from delivery_fakes import FakeApi, record, rig, settings
from streamproc.core.force_header import FORCE_HEADER
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
                           metrics=Metrics(), output=SimpleNamespace(send_all=send_all))


def _events(*records, forced=False):
    headers = [(FORCE_HEADER, b"1")] if forced else None
    return [SimpleNamespace(message=SimpleNamespace(
        value=r if isinstance(r, bytes) else r.dumps(), key=b"k" if isinstance(r, bytes)
        else r.key.encode(), headers=headers, topic="sink", partition=0, offset=n))
        for n, r in enumerate(records)]


def _deliver(r, ledger, sent, events, decided):
    asyncio.run(deliver_batch(_runtime(sent), "fake", events, r.deliverer, ledger, decided))


def _sent_ids(api, record_id):
    return sum(record_id in ids for ids in api.ids())


def test_a_batch_of_a_paused_destination_is_held_after_its_dead_letters_and_marks():
    api = FakeApi()
    # r1 rejected for good, r2 accepted, r3 refused (401): the destination pauses (a 5xx in a
    # call where the API answered other requests dead-letters r3 instead of pausing)
    api.respond = lambda doc: {"r1": httpx.Response(400), "r2": httpx.Response(200, json={}),
                               }.get(doc["items"][0]["id"], httpx.Response(401))
    r = rig(api, settings(max_attempts=2, retry_budget_s=3600.0))
    ledger, sent, decided = Ledger(r.ledger), [], {}
    batch = _events(record(1), record(2), record(3))
    with pytest.raises(Held) as held:
        _deliver(r, ledger, sent, batch, decided)
    assert 0 < held.value.hold_s <= 30.0  # until the next probe (AUTH_PROBE_INTERVAL_S)
    assert [topic for topic, _, _ in sent] == ["dlq.fake"]  # r1's dead letter, once
    assert ledger.marked == [] and ledger.flushed == 1  # a dead id never enters the ledger
    assert not r.ledger.seen("r1") and r.ledger.seen("r2")  # r2 by the engine when accepted
    # read again while paused: r3 is held again without a request
    calls = len(api.calls)
    with pytest.raises(Held):
        _deliver(r, ledger, sent, batch, decided)
    assert len(api.calls) == calls and len(sent) == 1
    # the probe is due and the API takes everything now: r1 is not sent again (its dead letter
    # is out), r3 is delivered and the batch completes
    api.respond = lambda doc: httpx.Response(200, json={})
    r.clock.now += 31.0
    _deliver(r, ledger, sent, batch, decided)
    assert _sent_ids(api, "r1") == 1 and _sent_ids(api, "r2") == 1 and r.ledger.seen("r3")
    assert len(sent) == 1
    # `dlq redrive` produces r1 again (not forced): it is delivered, not skipped
    _deliver(r, ledger, sent, _events(record(1)), decided)
    assert _sent_ids(api, "r1") == 2 and r.ledger.seen("r1")


def test_forced_records_delivered_in_a_held_batch_are_not_sent_again_on_the_re_read():
    api = FakeApi()
    api.respond = lambda doc: httpx.Response(401 if doc["items"][0]["id"] == "r2" else 200,
                                             json={})
    r = rig(api, settings(max_attempts=2, retry_budget_s=3600.0))
    ledger, sent, decided = Ledger(r.ledger), [], {}
    batch = _events(record(1), record(2), forced=True)
    with pytest.raises(Held):
        _deliver(r, ledger, sent, batch, decided)
    assert _sent_ids(api, "r1") == 1
    api.respond = lambda doc: httpx.Response(200, json={})
    r.clock.now += 31.0
    _deliver(r, ledger, sent, batch, decided)
    assert _sent_ids(api, "r1") == 1 and _sent_ids(api, "r2") == 2


def test_an_unreadable_sink_record_is_dead_lettered_once_not_on_every_hold_cycle():
    api = FakeApi(httpx.Response(401))
    r = rig(api, settings(max_attempts=2, retry_budget_s=3600.0))
    ledger, sent, decided = Ledger(r.ledger), [], {}
    batch = _events(b"not a sink record", record(1))
    for _ in range(2):
        with pytest.raises(Held):
            _deliver(r, ledger, sent, batch, decided)
        r.clock.now += 31.0
    assert sent == []
    api.script = [httpx.Response(200, json={})]
    _deliver(r, ledger, sent, batch, decided)
    reasons = [json.loads(value)["reason"] for _, _, value in sent]
    assert reasons == ["bad_sink_record"]


def test_a_redrive_read_in_the_same_pass_as_its_held_original_is_delivered():
    """r1 is dead-lettered while its batch is held; the operator redrives it during the outage,
    so its copy lands behind the original and the re-read takes both: the original is skipped
    (decided already), the copy is sent."""
    api = FakeApi()
    api.respond = lambda doc: {"r1": httpx.Response(400)}.get(doc["items"][0]["id"],
                                                                httpx.Response(401))
    r = rig(api, settings(max_attempts=2, retry_budget_s=3600.0))
    ledger, sent, decided = Ledger(r.ledger), [], {}
    with pytest.raises(Held):
        _deliver(r, ledger, sent, _events(record(1), record(2)), decided)
    assert _sent_ids(api, "r1") == 1 and len(sent) == 1  # r1 dead-lettered once
    api.respond = lambda doc: httpx.Response(200, json={})
    r.clock.now += 31.0
    _deliver(r, ledger, sent, _events(record(1), record(2), record(1)), decided)
    assert _sent_ids(api, "r1") == 2 and r.ledger.seen("r1") and r.ledger.seen("r2")
    assert len(sent) == 1  # the original's dead letter was not repeated
