"""The outage pause (delivery/outage.py): a destination that keeps failing transiently is
paused and its records held, not dead-lettered, inside the retry budget; one probe request per
call once a probe is due; it resumes on its own; past the budget records are dead-lettered."""

from __future__ import annotations

import logging

import httpx

from delivery_fakes import FakeApi, record, rig, settings

OK = httpx.Response(200, json={})
DOWN = httpx.Response(503, text="upstream unavailable")


def _outage_rig(api: FakeApi, **kw):
    base = dict(max_attempts=3, backoff_initial_s=0.5, backoff_max_s=8.0,
                retry_budget_s=3600.0)
    return rig(api, settings(**{**base, **kw}))


async def test_a_destination_failing_past_the_call_retries_is_paused_not_dead_lettered(caplog):
    api = FakeApi(DOWN)
    r = _outage_rig(api)
    with caplog.at_level(logging.INFO, logger="streamproc.delivery"):
        report = await r.deliverer.deliver([record(i) for i in range(3)])
    assert report.dead == [] and report.delivered == []
    assert sorted(report.held) == ["r0", "r1", "r2"]
    outage = r.deliverer.outage
    assert outage.active and outage.last_status == 503 and "503" in outage.last_error
    assert r.snap("destination_paused") == {("fake",): 1.0}
    assert r.snap("destination_paused_since")[("fake",)] > 0
    assert r.snap("dead_lettered") == {}
    paused = [rec for rec in caplog.records if "PAUSED" in rec.getMessage()]
    assert len(paused) == 1 and paused[0].levelno == logging.WARNING


async def test_while_paused_nothing_is_sent_until_a_probe_is_due_then_one_request():
    api = FakeApi(DOWN)
    r = _outage_rig(api)
    await r.deliverer.deliver([record(i) for i in range(3)])
    sent = len(api.calls)
    outage = r.deliverer.outage
    wait = outage.wait_s()
    assert 0 < wait <= 8.0
    report = await r.deliverer.deliver([record(i) for i in range(3, 6)])
    assert len(api.calls) == sent and sorted(report.held) == ["r3", "r4", "r5"]
    r.clock.now += wait
    report = await r.deliverer.deliver([record(i) for i in range(3, 6)])
    assert len(api.calls) == sent + 1  # one probe, the others held without a request
    assert sorted(report.held) == ["r3", "r4", "r5"] and report.dead == []
    assert outage.wait_s() > wait  # the probe backoff grew


async def test_probe_backoff_is_capped_at_backoff_max():
    api = FakeApi(DOWN)
    r = _outage_rig(api, backoff_max_s=4.0)
    await r.deliverer.deliver([record(1)])
    waits = []
    for _ in range(8):
        r.clock.now += r.deliverer.outage.wait_s()
        await r.deliverer.deliver([record(1)])
        waits.append(r.deliverer.outage.wait_s())
    assert max(waits) == 4.0 and waits == sorted(waits)


async def test_it_resumes_by_itself_when_the_probe_succeeds(caplog):
    api = FakeApi(DOWN)
    r = _outage_rig(api)
    await r.deliverer.deliver([record(i) for i in range(4)])
    api.script = [OK]
    r.clock.now += r.deliverer.outage.wait_s()
    with caplog.at_level(logging.INFO, logger="streamproc.delivery"):
        report = await r.deliverer.deliver([record(i) for i in range(4)])
    assert sorted(report.delivered) == ["r0", "r1", "r2", "r3"]
    assert report.held == [] and report.dead == []
    assert not r.deliverer.outage.active
    assert r.snap("destination_paused") == {("fake",): 0.0}
    assert r.snap("destination_paused_since") == {("fake",): 0.0}
    resumed = [rec for rec in caplog.records if "resumed" in rec.getMessage()]
    assert len(resumed) == 1 and resumed[0].levelno == logging.INFO


async def test_a_permanent_rejection_is_dead_lettered_at_once_and_ends_the_outage():
    api = FakeApi(DOWN)
    r = _outage_rig(api)
    await r.deliverer.deliver([record(1)])
    api.script = [httpx.Response(400, text="bad email")]
    r.clock.now += r.deliverer.outage.wait_s()
    report = await r.deliverer.deliver([record(1)])
    assert [(d.reason, d.status) for d in report.dead] == [("http_400", 400)]
    assert not r.deliverer.outage.active


async def test_past_the_budget_records_are_dead_lettered_with_the_last_response():
    api = FakeApi(DOWN)
    r = _outage_rig(api, retry_budget_s=60.0)
    await r.deliverer.deliver([record(i) for i in range(3)])
    r.clock.now += 61.0
    report = await r.deliverer.deliver([record(i) for i in range(3)])
    assert report.held == [] and report.delivered == []
    assert sorted((d.record.id, d.reason, d.status) for d in report.dead) == [
        (f"r{i}", "retries_exhausted", 503) for i in range(3)]
    assert all("upstream unavailable" in d.body_excerpt for d in report.dead)
    # the budget is spent: each record was sent once, no probe-only round, no retries
    assert r.snap("dead_lettered") == {("fake", "5xx"): 3.0}


async def test_a_record_the_api_keeps_failing_while_it_answers_others_is_dead_lettered():
    """The API is up (it answers the other requests of the call): the record that exhausts its
    in-call retries is what fails, so it is dead-lettered (redrivable) and the destination is
    not paused; pausing would make that record the probe and stall the destination."""
    api = FakeApi()
    api.respond = lambda doc: httpx.Response(500) if doc["items"][0]["id"] == "r0" else OK
    r = _outage_rig(api, max_attempts=3)
    report = await r.deliverer.deliver([record(i) for i in range(4)])
    assert [(d.record.id, d.reason, d.status, d.attempts) for d in report.dead] == [
        ("r0", "retries_exhausted", 500, 3)]
    assert sorted(report.delivered) == ["r1", "r2", "r3"] and report.held == []
    assert not r.deliverer.outage.active
    assert r.snap("destination_paused") == {("fake",): 0.0}
    report = await r.deliverer.deliver([record(i) for i in range(4, 6)])  # nothing held back
    assert sorted(report.delivered) == ["r4", "r5"] and report.held == []


async def test_blips_inside_the_call_retries_never_pause():
    api = FakeApi(DOWN, httpx.Response(429, headers={"Retry-After": "1"}), OK)
    r = _outage_rig(api, max_attempts=5)
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and report.held == [] and report.dead == []
    assert not r.deliverer.outage.active
    assert r.snap("destination_paused") == {("fake",): 0.0}
