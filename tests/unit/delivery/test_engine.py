"""Deliverer against a fake destination behind httpx.MockTransport, with a fake clock/sleep."""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
import orjson
import pytest

from delivery_fakes import FakeApi, destination, record, rig, settings
from streamproc.destinations.request import HttpRequest

OK = httpx.Response(200, json={})


def status(code: int, **kw) -> httpx.Response:
    return httpx.Response(code, **kw)


async def test_retries_then_success():
    r = rig(FakeApi(status(503, text="busy"), OK))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and report.dead == [] and report.skipped == []
    assert len(r.api.calls) == 2 and len(r.clock.sleeps) == 1
    assert r.snap("retried") == {("fake", "5xx"): 1}
    assert r.snap("delivered") == {("fake", "2xx"): 1}


async def test_429_retry_after_is_waited_at_least():
    r = rig(FakeApi(status(429, headers={"Retry-After": "7"}), OK))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"]
    assert len(r.clock.sleeps) == 1 and r.clock.sleeps[0] >= 7.0


async def test_500_three_times_then_200():
    r = rig(FakeApi(status(500), status(500), status(500), OK))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and not report.dead
    assert len(r.api.calls) == 4 and len(r.clock.sleeps) == 3
    requests = r.snap("requests")
    assert requests[("fake", "send", "500")] == 3 and requests[("fake", "send", "200")] == 1
    assert r.snap("failed") == {("fake", "5xx"): 3}


async def test_400_is_permanent_dead_and_not_retried():
    r = rig(FakeApi(status(400, text='{"error":"bad field"}')))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == [] and len(report.dead) == 1
    dead = report.dead[0]
    assert (dead.reason, dead.status, dead.attempts) == ("http_400", 400, 1)
    assert "bad field" in dead.body_excerpt
    assert dead.first_attempt_at == dead.last_attempt_at is not None
    assert len(r.api.calls) == 1 and r.clock.sleeps == []
    assert r.snap("dead_lettered") == {("fake", "4xx"): 1}


async def test_partial_outcome_retries_only_the_failed_record():
    r = rig(FakeApi(status(200, json={"failed": {"r2": "retry"}}), OK), settings(batch_size=3))
    report = await r.deliverer.deliver([record(1), record(2), record(3)])
    assert sorted(report.delivered) == ["r1", "r2", "r3"]
    assert r.api.ids() == [["r1", "r2", "r3"], ["r2"]]
    assert r.snap("delivered") == {("fake", "2xx"): 3}
    assert r.snap("retried") == {("fake", "2xx"): 1}


async def test_per_record_permanent_in_200_is_dead_others_delivered():
    r = rig(FakeApi(status(200, json={"failed": {"r1": "perm"}})), settings(batch_size=2))
    report = await r.deliverer.deliver([record(1), record(2)])
    assert report.delivered == ["r2"]
    assert [(d.record.id, d.reason, d.status) for d in report.dead] == [("r1", "rejected", 200)]
    assert len(r.api.calls) == 1


async def test_max_attempts_exhausted_is_dead_with_attempt_count():
    r = rig(FakeApi(status(503, text="down for maintenance")), settings(max_attempts=3,
                                                                      retry_budget_s=0.0))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == []
    dead = report.dead[0]
    assert (dead.reason, dead.status, dead.attempts) == ("retries_exhausted", 503, 3)
    assert "maintenance" in dead.body_excerpt
    assert dead.last_attempt_at > dead.first_attempt_at
    assert len(r.api.calls) == 3 and len(r.clock.sleeps) == 2
    doc = orjson.loads(dead.to_dead_letter())
    assert doc["stage"] == "delivery" and doc["attempts"] == 3 and doc["record"]["id"] == "r1"


async def test_max_retry_time_bounds_the_total_wait():
    r = rig(FakeApi(status(502)), settings(max_attempts=1000, max_retry_time_s=10.0,
                                           backoff_initial_s=1.0, backoff_max_s=4.0,
                                           retry_budget_s=0.0))
    # rng 0.5 with full jitter: waits 0.5, 1, 2, 2, 2, 2 (9.5 s); the next would pass 10 s
    start = r.clock.now
    report = await r.deliverer.deliver([record(1)])
    assert report.dead[0].reason == "retries_exhausted"
    assert sum(r.clock.sleeps) <= 10.0 and r.clock.now - start <= 10.0
    assert report.dead[0].attempts == len(r.clock.sleeps) + 1 < 1000


async def test_throttle_beyond_the_budget_is_dead_without_waiting():
    r = rig(FakeApi(status(429, headers={"Retry-After": "3600"})), settings(max_retry_time_s=60,
                                                                          retry_budget_s=0.0))
    report = await r.deliverer.deliver([record(1)])
    assert report.dead[0].reason == "retries_exhausted" and r.clock.sleeps == []


async def test_network_errors_and_timeouts_are_retried():
    api = FakeApi(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), OK)
    r = rig(api)
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and len(api.calls) == 3
    assert r.snap("retried") == {("fake", "network"): 2}
    assert r.snap("requests")[("fake", "send", "network")] == 2


async def test_mapping_failure_is_dead_immediately():
    r = rig(FakeApi(OK))
    report = await r.deliverer.deliver([record(1, bad=True), record(2)])
    assert report.delivered == ["r2"]
    dead = report.dead[0]
    assert (dead.record.id, dead.reason, dead.attempts, dead.status) == ("r1", "missing_email", 0,
                                                                         None)
    assert r.snap("dead_lettered") == {("fake", "mapping"): 1}


async def test_auth_failure_pauses_keeps_records_and_resumes(caplog):
    """401/403 pauses the destination: the call returns its records held (no long await in
    the agent), one probe per interval in later calls, delivery resumes once it works."""
    api = FakeApi()
    api.respond = lambda doc: status(401, json={"error": "Invalid Credentials"})
    r = rig(api, settings(concurrency=2, auth_probe_interval_s=30.0))
    records = [record(i) for i in range(6)]
    with caplog.at_level(logging.ERROR, logger="streamproc.delivery.engine"):
        report = await r.deliverer.deliver(records)
    assert sorted(report.held) == [f"r{i}" for i in range(6)] and report.dead == []
    assert r.deliverer.paused and r.snap("auth_paused") == {("fake",): 1.0}
    assert r.clock.sleeps == [] and r.deliverer.hold_s() == 30.0
    first = len(api.calls)
    assert first <= 2  # 2 in flight at the first 401
    r.clock.now += 10.0  # not due: held without a request
    assert sorted((await r.deliverer.deliver(records)).held) == [f"r{i}" for i in range(6)]
    assert len(api.calls) == first
    r.clock.now += 20.0  # due: one probe, still refused
    assert len((await r.deliverer.deliver(records)).held) == 6
    assert len(api.calls) == first + 1 and r.deliverer.hold_s() == 30.0
    api.respond = lambda doc: OK  # credentials fixed
    r.clock.now += 30.0
    report = await r.deliverer.deliver(records)
    assert sorted(report.delivered) == [f"r{i}" for i in range(6)] and report.held == []
    assert r.snap("auth_paused") == {("fake",): 0.0} and not r.deliverer.paused
    paused_logs = [rec for rec in caplog.records if "PAUSED" in rec.getMessage()]
    assert len(paused_logs) == 1 and paused_logs[0].levelno == logging.ERROR
    assert "fake-key" not in caplog.text
    assert r.snap("dead_lettered") == {}


async def test_ledger_skips_seen_ids_unless_forced():
    r = rig(FakeApi(OK))
    r.ledger.mark(["r1"], r.clock.wall())
    report = await r.deliverer.deliver([record(1), record(2), record(2)])
    assert report.skipped == ["r1", "r2"] and report.delivered == ["r2"]
    assert r.ledger.seen("r2") and r.api.ids() == [["r2"]]
    forced = await r.deliverer.deliver([record(1), record(2)], force=True)
    assert forced.delivered == ["r1", "r2"] and forced.skipped == []
    again = await r.deliverer.deliver([record(1), record(2)])
    assert again.skipped == ["r1", "r2"] and len(r.api.calls) == 3


async def test_ledger_marks_as_soon_as_acknowledged():
    seen_at_second_call = []
    r = rig(FakeApi())

    def respond(doc):
        seen_at_second_call.append(r.ledger.seen("r1"))
        return OK

    r.api.respond = respond
    await r.deliverer.deliver([record(1, key="k"), record(2, key="k")])
    assert seen_at_second_call == [False, True]


async def test_order_per_key_with_concurrency():
    rng = random.Random(7)
    in_flight: set[str] = set()
    arrivals: list[tuple[str, str]] = []
    overlap = {"max": 0, "same_key": 0}
    fail_once = {"r0"}

    async def handler(request: httpx.Request) -> httpx.Response:
        item = orjson.loads(request.content)["items"][0]
        if item["key"] in in_flight:
            overlap["same_key"] += 1
        in_flight.add(item["key"])
        overlap["max"] = max(overlap["max"], len(in_flight))
        await asyncio.sleep(rng.uniform(0, 0.004))
        in_flight.discard(item["key"])
        if item["id"] in fail_once:
            fail_once.discard(item["id"])
            return status(503)
        arrivals.append((item["key"], item["id"]))
        return OK

    records = [record(i, key=f"k{i % 4}") for i in range(24)]
    r = rig(handler, settings(concurrency=4))
    report = await r.deliverer.deliver(records)
    assert sorted(report.delivered) == sorted(x.id for x in records)
    assert overlap["same_key"] == 0 and overlap["max"] > 1
    for key in {x.key for x in records}:
        expected = [x.id for x in records if x.key == key]
        assert [i for k, i in arrivals if k == key] == expected


async def test_exclusive_requests_never_overlap():
    in_flight = {"now": 0, "max": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.002)
        in_flight["now"] -= 1
        return OK

    r = rig(handler, settings(concurrency=4, exclusive=True))
    report = await r.deliverer.deliver([record(i) for i in range(8)])
    assert len(report.delivered) == 8 and in_flight["max"] == 1


async def test_repair_then_retry_original_once():
    repairs = []

    def repair(request, code, body):
        repairs.append((code, "undefined property" in body))
        return [HttpRequest("POST", "/meta", {"Name": "plan"}, [], "contactmetadata")]

    api = FakeApi(status(400, text="undefined property plan"), status(500), OK)
    r = rig(api, dest=destination(repair=repair))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and repairs == [(400, True)]
    assert [c["_path"] for c in api.calls] == ["/v1/send", "/v1/meta", "/v1/send"]
    assert r.snap("requests")[("fake", "contactmetadata", "500")] == 1


async def test_repair_retry_failing_again_is_dead():
    r = rig(FakeApi(status(400, text="undefined property")),
            dest=destination(repair=lambda req, code, body: [
                HttpRequest("POST", "/meta", {}, [], "contactmetadata")]))
    report = await r.deliverer.deliver([record(1)])
    assert [d.reason for d in report.dead] == ["http_400"] and report.dead[0].attempts == 2
    assert [c["_path"] for c in r.api.calls] == ["/v1/send", "/v1/meta", "/v1/send"]


async def test_metrics_snapshot_numbers():
    api = FakeApi()
    api.respond = lambda doc: (status(400) if doc["items"][0]["id"] == "r3" else OK)
    r = rig(api, settings(batch_size=1))
    await r.deliverer.deliver([record(1), record(2), record(3), record(4, bad=True)])
    snap = r.metrics.snapshot()
    assert snap["delivered"] == {("fake", "2xx"): 2}
    assert snap["dead_lettered"] == {("fake", "4xx"): 1, ("fake", "mapping"): 1}
    assert snap["failed"] == {("fake", "4xx"): 1}
    assert snap["requests"] == {("fake", "send", "200"): 2, ("fake", "send", "400"): 1}
    assert snap["batch_size"][("fake",)] == {"count": 3, "sum": 3}
    assert snap["delivery_latency_seconds"][("fake",)]["count"] == 2
    assert snap["delivery_latency_seconds"][("fake",)]["sum"] == pytest.approx(20.0)
    assert snap["request_duration_seconds"][("fake",)]["count"] == 3


async def test_throttled_record_inside_a_200_waits_its_retry_after():
    r = rig(FakeApi(status(200, json={"failed": {"r1": "throttle"}}), OK))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and r.clock.sleeps[0] >= 3.0


async def test_auth_failure_on_a_repair_fix_keeps_the_records():
    api = FakeApi()
    state = {"fixed": False}

    def respond(doc):
        if doc["_path"] == "/v1/meta":
            return status(200) if state["fixed"] else status(401)
        return OK if state["fixed"] else status(400, text="undefined property")

    api.respond = respond
    dest = destination(repair=lambda req, code, body: [
        HttpRequest("POST", "/meta", {}, [], "contactmetadata")])
    r = rig(api, dest=dest)
    report = await r.deliverer.deliver([record(1)])
    assert report.held == ["r1"] and report.dead == [] and r.deliverer.paused
    state.update(fixed=True)
    r.clock.now += 30.0
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and report.dead == [] and not r.deliverer.paused


async def test_requests_for_one_body_identity_never_overlap():
    """Two records with different record keys but one email in the body go one after another."""
    in_flight, overlaps = set(), []

    async def handler(request: httpx.Request) -> httpx.Response:
        email = orjson.loads(request.content)["items"][0]["email"]
        overlaps.append(email in in_flight)
        in_flight.add(email)
        await asyncio.sleep(0.003)
        in_flight.discard(email)
        return OK

    dest = destination()
    build = dest.build_requests

    def build_with_identity(records, s):
        requests, failures = build(records, s)
        for request in requests:
            request.record_keys = [item["email"] for item in request.body["items"]]
        return requests, failures

    dest.build_requests = build_with_identity
    r = rig(handler, settings(concurrency=4), dest=dest)
    records = [record(i, key=f"user-{i}", email="Same@Example.com") for i in range(4)]
    report = await r.deliverer.deliver(records)
    assert len(report.delivered) == 4 and overlaps == [False] * 4
