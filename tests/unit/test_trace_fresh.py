"""Fresh review of the trace result line (streamproc/ops/trace.py timeline, trace_text).
Each test fails on 5259967."""

from __future__ import annotations

from types import SimpleNamespace as NS

import orjson
import pytest

from streamproc.ops.trace import timeline
from streamproc.ops.trace_text import render_text


def _line(mid, docs):
    return render_text(mid, [timeline(mid, docs)]).splitlines()[-1]


def _route(t, to=(), st="users", **kw):
    return {"k": "route", "m": "m", "t": t, "st": st, "to": [list(x) for x in to], **kw}


def _try(t, n, s, r, rid="a", d="mailmodo", **kw):
    return {"k": "try", "m": "m", "t": t, "d": d, "id": rid, "n": n, "s": s, "r": r, **kw}


# 1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, value", [
    ("mailmodo", {"event": "opened", "email": "ada@example.com", "timestamp": 1763633400}),
    ("mailjet", [{"event": "open", "email": "ada@example.com", "time": 1763633500,
                  "MessageID": 77}]),
])
def test_a_replayed_raw_input_is_traced_under_the_id_its_in_and_route_outcomes_have(source,
                                                                                    value):
    """`streamproc replay mailmodo` re-produces the raw record; its `replay` outcome is filed
    under raw_message_id (topic:partition:offset: no messageId/id in the JSON), while the
    input's in/route/try outcomes are under the event id (mm-<hash>, MessageID:event:time).
    `trace <event id>` never shows the replay, and the timeline's `again` is never set."""
    from streamproc.core.events.inputs import parse_input
    from streamproc.core.outcome_codec import message_id
    from streamproc.ops.outcomes_cli import replay_docs

    m = NS(topic=f"{source}.raw", partition=2, offset=41, value=orjson.dumps(value),
           timestamp=1_763_633_500_000, headers=[])
    events, errors = parse_input(source, m)
    assert events and not errors
    [doc] = replay_docs("input", source, m, m.topic)
    assert doc["m"] in [message_id(e) for e in events], doc["m"]  # FAILS: 'mailmodo.raw:2:41'


# 2 ------------------------------------------------------------------------------------------
def test_a_sink_replay_the_ledger_skipped_does_not_hide_the_delivery():
    """`streamproc replay sink.mailmodo` (no --force) of a range with a delivered record: the
    ledger skips it (no `try` outcome is written), so the record stays 'replayed' forever with
    its attempts and status wiped: 'mailmodo replayed' although it was delivered."""
    docs = [_route(1, [("mailmodo", "a", "add_event")]), _try(2, 1, 200, "ok"),
            {"k": "replay", "m": "m", "t": 3, "d": "mailmodo", "id": "a",
             "to": "sink.mailmodo"}]
    st = timeline("m", docs)["destinations"]["mailmodo"]
    assert st["state"] == "delivered", _line("m", docs)  # FAILS: 'mailmodo replayed'


# 3 ------------------------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="known limit (README, Why didn't my event arrive?): a "
                   "route row counts an input's held parts but does not name them, so a release "
                   "row cannot say which part is still waiting")
def test_a_partly_released_input_is_still_held_for_the_part_that_waits():
    """A Mailmodo open of a new contact waits for its identify (Segment) and for a CleverTap
    ID (CleverTap): route row held=2. The identify releases the Segment part only (a release
    row with the Segment record); the CleverTap part still waits. The result drops 'held'
    at the first release row: 'segment routed', CleverTap not mentioned at all."""
    docs = [{"k": "in", "m": "m", "t": 1, "src": "mailmodo"},
            _route(2, st="contacts", held=2),
            _route(5, [("segment", "s", "track")], st="contacts")]
    dests = timeline("m", docs)["destinations"]
    assert dests.get("*", {}).get("state") == "held", _line("m", docs)  # FAILS


# 4 ------------------------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="known limit (README): a routing result's drops carry "
                   "no message id, so those of inputs it released are filed on the releasing "
                   "input's route row")
def test_drops_of_released_held_inputs_are_not_filed_under_the_releasing_input():
    """Catch-up: a Mailmodo open (no CleverTap ID, contact not identified) is held; the
    identify's contact update comes after the hold time, releases its Segment part and decides
    its CleverTap part as expired (no_clevertap_id, routing test_holds). route_rows puts every
    drop of the result on the releasing input's own row: the identify's trace says
    'clevertap dropped (no_clevertap_id)' (an identify never goes to CleverTap) and the open's
    trace never says why CleverTap did not get it."""
    from streamproc.config.settings import load_settings
    from streamproc.core.events.mailmodo import parse_mailmodo
    from streamproc.core.outcome_codec import decode_docs
    from streamproc.core.routing import RoutingConfig
    from streamproc.core.routing.contacts import route_contact_event
    from streamproc.core.routing.messages import ContactUpdate
    from streamproc.worker.outcomes import Outcomes

    cfg = RoutingConfig(hold_seconds=60.0)
    o = Outcomes(load_settings({}), "outcomes")
    act = parse_mailmodo(orjson.dumps({"event": "opened", "email": "ada@example.com",
                                       "timestamp": 1763633400}))
    first = route_contact_event(act, None, cfg, now=1000.0)
    update = ContactUpdate(email="ada@example.com", email_key="ada@example.com", user_id="u1",
                           anonymous_id=None, traits={}, timestamp=1763633460.0,
                           source_id="i1")
    second = route_contact_event(update, first.contact, cfg, now=8200.0)
    assert [d.reason for d in second.drops] == ["no_clevertap_id"]  # the open's CleverTap part
    rows = o.routed("contacts", act, first) + o.routed("contacts", update, second)
    docs = [d for _, _, v, _, _ in o.pack([], (), rows) for d in decode_docs(v)]
    identify = timeline("i1", [d for d in docs if d["m"] == "i1"])["destinations"]
    opened = timeline(act.event_id, [d for d in docs if d["m"] == act.event_id])
    assert "clevertap" not in identify, identify  # FAILS: clevertap dropped (no_clevertap_id)
    assert opened["destinations"].get("clevertap", {}).get("reason") == "no_clevertap_id"


# 5 ------------------------------------------------------------------------------------------
def test_a_raw_replay_routed_again_restarts_the_records_it_routes():
    """mailmodo: 5 x 503, dead-lettered (retries_exhausted). `streamproc replay segment` of the
    input: routed again with the same (deterministic) delivery id, first new attempt 503. The
    record is not restarted by the new route row: 'mailmodo retrying (retries_exhausted,
    HTTP 503, 5 attempt(s))' - a dead letter's reason beside 'retrying', and the old count."""
    docs = [{"k": "in", "m": "m", "t": 0}, _route(1, [("mailmodo", "a", "add_event")])]
    docs += [_try(1 + n, n, 503, "retry") for n in range(1, 6)]
    docs += [{"k": "dead", "m": "m", "t": 7, "stage": "delivery", "d": "mailmodo", "id": "a",
              "r": "retries_exhausted", "s": 503, "n": 5},
             {"k": "replay", "m": "m", "t": 8, "to": "segment.raw"},
             {"k": "in", "m": "m", "t": 9}, _route(10, [("mailmodo", "a", "add_event")])]
    st = timeline("m", docs)["destinations"]["mailmodo"]
    assert st["state"] == "routed", _line("m", docs)  # FAILS: still dead_lettered
    docs.append(_try(11, 1, 503, "retry"))
    st = timeline("m", docs)["destinations"]["mailmodo"]
    assert "reason" not in st and st["attempts"] == 1, _line("m", docs)  # FAILS


# 6 ------------------------------------------------------------------------------------------
def test_attempts_count_the_attempts_of_every_delivery_call():
    """Deliverer.deliver counts attempts per call: records held through an outage (or a 401
    pause) start again at attempt 1 when read again. 3 x 503, paused, then 503 and 200: the
    result says '3 attempt(s)' for 5 HTTP attempts."""
    docs = [_route(1, [("mailmodo", "a", "add_event")])]
    docs += [_try(1 + n, n, 503, "retry") for n in (1, 2, 3)]
    docs += [_try(60, 1, 503, "retry"), _try(61, 2, 200, "ok")]
    assert timeline("m", docs)["destinations"]["mailmodo"]["attempts"] == 5  # FAILS: 3


# 7 ------------------------------------------------------------------------------------------
def test_a_record_delivered_after_a_raw_replay_does_not_keep_the_new_failure_status():
    """Delivered, then replayed from the raw topic after the ledger's retention: the new
    attempt fails (503, will retry) but the result stays 'delivered' with the new 'HTTP 503'."""
    docs = [_route(1, [("mailmodo", "a", "add_event")]), _try(2, 1, 200, "ok"),
            {"k": "replay", "m": "m", "t": 3, "to": "segment.raw"},
            _route(4, [("mailmodo", "a", "add_event")]), _try(5, 1, 503, "retry")]
    st = timeline("m", docs)["destinations"]["mailmodo"]
    assert not (st["state"] == "delivered" and st["status"] == 503), _line("m", docs)  # FAILS


# 8 ------------------------------------------------------------------------------------------
def test_tries_without_delivery_id_do_not_invent_a_record():
    """Older delivery writers put no `id` on try docs. A Mailmodo form's two CleverTap records
    (route row ids a, b), both delivered: '1 of 3 records delivered'."""
    docs = [_route(1, [("clevertap", "a", "event"), ("clevertap", "b", "event")], st="contacts"),
            _try(2, 1, 200, "ok", rid=None, d="clevertap"),
            _try(2, 1, 200, "ok", rid=None, d="clevertap")]
    st = timeline("m", docs)["destinations"]["clevertap"]
    assert st.get("records", 2) == 2, _line("m", docs)  # FAILS: 3 records


# 9 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc", [
    {"k": "route", "m": "m", "t": 1, "st": "users", "to": [["mailmodo", None, "add_event"]]},
    {"k": "route", "m": "m", "t": 1, "st": "users", "to": None},
    {"k": "route", "m": "m", "t": 1, "st": "users", "to": [], "drop": None},
    {"k": "route", "m": "m", "t": 1, "st": "users", "to": [["mailmodo", "a"]]},
    {"k": "route", "m": "m", "t": 1, "st": "users", "to": [], "drop": ["mailmodo"]},
    {"k": "route", "m": "m", "t": 1, "st": "users", "to": [],
     "drop": [["segment", "mailmodo", "disabled"]]},
    {"k": "try", "m": "m", "t": 1, "n": 1, "s": 200, "r": "ok"},
    {"k": "try", "m": "m", "t": 1, "d": "mailmodo", "id": "a", "s": 200, "r": "ok", "n": None},
])
def test_an_odd_document_does_not_break_the_trace(doc):
    """One odd document (another writer, an older version) raises in timeline() or
    render_text(): `trace <person>` fails for all of the person's inputs, /trace.json 500s."""
    render_text("m", [timeline("m", [{"k": "in", "m": "m", "t": 0}, doc])])  # FAILS


# 10 -----------------------------------------------------------------------------------------
def test_a_redrive_and_the_redriven_records_delivery_in_the_same_millisecond():
    """_ORDER has no redrive/replay (9): at an equal time (or a worker clock a little behind
    the operator's) the redriven record's delivery sorts before the redrive, which then wipes
    it: 'mailmodo redriven' although delivered."""
    docs = [_route(1, [("mailmodo", "a", "add_event")]), _try(2, 1, 400, "failed"),
            {"k": "dead", "m": "m", "t": 2, "stage": "delivery", "d": "mailmodo", "id": "a",
             "r": "http_400", "s": 400, "n": 1},
            {"k": "redrive", "m": "m", "t": 9, "d": "mailmodo", "id": "a", "to": "sink.mailmodo"},
            _try(9, 1, 200, "ok")]
    assert timeline("m", docs)["destinations"]["mailmodo"]["state"] == "delivered"  # FAILS


def test_a_route_row_with_an_odd_delivery_id_after_a_replay_does_not_break_the_trace():
    """A `to` row whose delivery id is not a string (a list) once the input was replayed: the
    record is restarted under its text, not a TypeError (an unhashable id)."""
    docs = [{"k": "in", "m": "m", "t": 0}, {"k": "replay", "m": "m", "t": 1, "to": "segment.raw"},
            {"k": "route", "m": "m", "t": 2, "st": "users", "to": [["mailmodo", ["a"], "ev"]]}]
    assert timeline("m", docs)["destinations"]["mailmodo"]["state"] == "routed"
    render_text("m", [timeline("m", docs)])
