"""A review of the delivery side of outcomes: each test failed before its fix."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from outcome_fakes import (OK, LedgerSurface, deliverer, docs_of,
                           held_after_three_tries, rec, repairing_deliverer, runtime,
                           sink_events)
from delivery_fakes import FakeApi, FakeClock, settings
from streamproc.config.settings import load_settings
from streamproc.core.metrics import Metrics
from streamproc.delivery.ledger import InMemoryLedger
from streamproc.delivery.outage import Outage
from streamproc.destinations.outcomes import classify_status
from streamproc.worker.deliver_agents import deliver_batch
from streamproc.worker.outcomes import Outcomes
from streamproc.worker.scrub import Scrubber


# ---------------------------------------------------------------- F: attempt numbers restart


async def test_attempt_numbers_and_dead_attempts_count_across_an_outage_hold():
    """A record fails 3 times (n=1..3), the destination is paused and the batch held; past
    the budget it is sent once more and dead-lettered. The 4th HTTP attempt is recorded as
    `attempt 1` and the dead outcome says `1 attempt(s)`."""
    clock, o, api, d = await held_after_three_tries(60.0)
    clock.now += 3600  # past the budget: draining, sent once and dead-lettered
    report = await d.deliver([rec(1)])
    assert [x.record.id for x in report.dead] == ["r1"]
    docs = docs_of(d.on_attempt.take(report.dead))
    tries = [x["n"] for x in docs if x["k"] == "try"]
    dead = [x["n"] for x in docs if x["k"] == "dead"]
    assert len(api.calls) == 4
    assert tries == [4], f"the 4th HTTP attempt is recorded as attempt {tries}"
    assert dead == [4], f"the dead outcome says {dead} attempt(s) after 4 HTTP attempts"


# ---------------------------------------------------------------- F: lost `try` after ledger mark


async def test_a_delivered_record_keeps_its_try_outcome_when_the_batch_is_cut_short():
    """r1 is accepted at once; r2 gets 429 Retry-After and the worker is stopped during the
    wait (CancelledError: a deploy). r1 is already in the ledger (mark writes the store and
    sends the changelog at once) but its `try ok` sits in AttemptRecorder.pending, never
    produced. After the restart the re-read skips r1 as delivered: no outcome at all says
    it was delivered; `trace m1` ends at 'routed' forever."""
    clock = FakeClock()
    ledger = LedgerSurface(InMemoryLedger(3600, clock=clock.wall))
    api = FakeApi()
    api.respond = lambda doc: (OK if doc["items"][0]["id"] == "r1" else httpx.Response(
        429, headers={"retry-after": "5"}))
    events = sink_events(rec(1), rec(2))
    sent: list = []
    o1 = Outcomes(load_settings({}), "outcomes")
    d1 = deliverer(api, clock, ledger.inner, o1, max_attempts=5)

    async def stopped(_s):
        raise asyncio.CancelledError

    d1._sleep = stopped
    with pytest.raises(asyncio.CancelledError):
        await deliver_batch(runtime(sent), "fake", events, d1, ledger, {})
    assert ledger.seen("r1")  # delivered and remembered
    # restart: a new worker process (new Outcomes, recorder, deliverer), same ledger store
    api.respond = lambda doc: OK
    o2 = Outcomes(load_settings({}), "outcomes")
    d2 = deliverer(api, FakeClock(), ledger.inner, o2, max_attempts=5)
    await deliver_batch(runtime(sent), "fake", events, d2, ledger, {})
    from streamproc.ops.trace import timeline

    docs = docs_of(sent)  # m1's `try ok` was never produced; the re-read says it was `seen`
    assert [(x["k"], x["m"]) for x in docs if x["k"] == "seen"] == [("seen", "m1")]
    route = {"k": "route", "m": "m1", "t": 0, "st": "users", "to": [["fake", "r1", "send"]]}
    m1 = [x for x in docs if x["m"] == "m1"]
    assert timeline("m1", [route, *m1])["destinations"]["fake"]["state"] == "delivered"


# ---------------------------------------------------------------- F: unscrubbed outage error


def test_the_status_pages_outage_error_is_masked_and_scrubbed_like_outcomes():
    """Outage.last_error (status page 'outage' column and /status.json
    destinations.<d>.outage.last_error) is str(error)[:300]; classify_status puts the
    response body in the message. The recent-failures list scrubs the same text."""
    from streamproc.http.status import _outage

    body = b'{"error": "temporarily unavailable for jane.doe@example.com", "token": "s3cr3t-tok"}'
    error = classify_status(503, body)
    outage = Outage("fake", settings().delivery, Metrics())
    outage.failed(["r1"], error, 503)
    outage.pause(1)
    rt = SimpleNamespace(deliverers={"fake": {"deliverer": SimpleNamespace(outage=outage)}},
                         outcomes=None, settings=load_settings({}))
    shown = _outage(rt, "fake")["last_error"]  # the status page's outage column
    assert "jane.doe@example.com" not in shown, shown
    assert "s3cr3t-tok" not in shown, shown


# ---------------------------------------------------------------- F: emails the scrubber misses


@pytest.mark.parametrize("email", [
    "jane@münchen.de",          # IDN domain (is_email accepts it)
    "jane@m\\u00fcnchen.de",    # the same, JSON-escaped as vendors echo it
    "jane!doe@example.com",      # RFC 5322 atext the local-part class lacks
    "jane/doe@example.com",
    "jane#doe@example.com",
])
def test_emails_is_email_accepts_are_masked_in_response_bodies(email):
    from streamproc.core.events.common import is_email
    assert is_email(email.replace("\\u00fc", "ü"))
    text = Scrubber(mask=True)('{"errors": [{"email": "%s", "error": "invalid"}]}' % email)
    assert "jane" not in text, text  # masked as j***@<domain>


# ---------------------------------------------------------------- F: ledger skips leave no outcome


async def test_a_sink_replay_of_a_delivered_record_does_not_leave_the_trace_at_replayed():
    """`streamproc replay` of a sink range (no --force) writes a `replay` outcome (d, id) that
    resets the record's state to 'replayed'; the worker then skips the record as already
    delivered (ledger) and writes nothing, so the trace's result says `fake replayed` for
    good although the record was delivered (and is not re-sent)."""
    from streamproc.ops.outcomes_cli import replay_docs
    from streamproc.ops.trace import timeline

    clock = FakeClock()
    ledger = LedgerSurface(InMemoryLedger(3600, clock=clock.wall))
    api = FakeApi(OK)
    o = Outcomes(load_settings({}), "outcomes")
    d = deliverer(api, clock, ledger.inner, o)
    sent: list = []
    events = sink_events(rec(1))
    await deliver_batch(runtime(sent), "fake", events, d, ledger, {})
    docs = docs_of(sent)
    docs.append({**replay_docs("sink", "fake", events[0].message, "sink")[0],
                 "t": docs[-1]["t"] + 1})
    await deliver_batch(runtime(sent), "fake", events, d, ledger, {})  # the replayed copy
    assert len(api.calls) == 1  # skipped by the ledger, as designed
    docs += docs_of(sent[1:])
    route = {"k": "route", "m": "m1", "t": docs[0]["t"] - 1, "st": "users",
             "to": [["fake", "r1", "send"]]}
    state = timeline("m1", [route, *docs])["destinations"]["fake"]["state"]
    assert state == "delivered", f"trace says {state!r} for a record delivered once and skipped"


async def test_a_batch_failing_after_its_outputs_does_not_dead_letter_and_trace_twice():
    """r1 is rejected (400): its dead letter and its try/dead outcomes are produced, then the
    ledger's changelog flush fails (SEND_ATTEMPTS spent) and the batch is read again (not a
    hold, no restart): `decided` is only filled for held batches, so r1 is sent to the API
    again and dead-lettered and traced a second time."""
    clock = FakeClock()

    class FlakyLedger(LedgerSurface):
        fails = 1

        async def flush(self):
            if self.fails:
                self.fails -= 1
                raise RuntimeError("changelog write failed")

    ledger = FlakyLedger(InMemoryLedger(3600, clock=clock.wall))
    api = FakeApi(httpx.Response(400, text='{"error": "bad"}'))
    o = Outcomes(load_settings({}), "outcomes")
    d = deliverer(api, clock, ledger.inner, o)
    sent: list = []
    events, decided = sink_events(rec(1)), {}
    with pytest.raises(RuntimeError):
        await deliver_batch(runtime(sent), "fake", events, d, ledger, decided)
    await deliver_batch(runtime(sent), "fake", events, d, ledger, decided)  # read again
    dlq = [x for x in sent if x[0] == "dlq.fake"]
    dead = [x for x in docs_of(sent) if x["k"] == "dead"]
    assert (len(api.calls), len(dlq), len(dead)) == (1, 1, 1)


async def test_a_try_the_engine_retries_is_not_recorded_as_refused():
    """A permanent 400 whose repair fix fails transiently: the engine retries the record
    (Retryable, a later round), but the `try` already said r='failed' ('refused'); every
    attempt reads 'refused' up to the retries_exhausted dead letter."""
    o = Outcomes(load_settings({}), "outcomes")
    d = repairing_deliverer(503, o)
    report = await d.deliver([rec(1)])
    assert [x.reason for x in report.dead] == ["retries_exhausted"]
    docs = docs_of(d.on_attempt.take(report.dead))
    assert [(x["k"], x.get("r")) for x in docs] == [
        ("try", "retry"), ("try", "retry"), ("dead", "retries_exhausted")]
