"""streamproc trace's local index (RocksDB) and timelines: lookups by message id, email and
userId over outcome records, and where each destination ended, as text."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import orjson

from streamproc.ops.trace_text import render_text
from streamproc.ops.trace import TraceIndex, lookup, timeline
from streamproc.core.outcome_codec import encode_docs, person_hash

OFFSETS = iter(range(10_000))


def _recs(*docs, partition=0):
    """One record per document, alternating the value forms the topic may hold (zlib: as
    earlier versions wrote them)."""
    forms = (orjson.dumps, lambda d: orjson.dumps([d]), lambda d: encode_docs([d]),
             lambda d: zlib.compress(orjson.dumps([d]), 1))
    return [SimpleNamespace(partition=partition, offset=next(OFFSETS), value=forms[i % 4](d))
            for i, d in enumerate(docs)]


def _path(tmp_path):
    return tmp_path / "index"


def test_lookup_by_message_id_email_and_user_id(tmp_path):
    idx = TraceIndex(_path(tmp_path))
    h = person_hash("jo@ex.com")
    idx.add(_recs({"k": "in", "m": "m1", "t": 1.0, "src": "segment", "u": "u1", "h": h,
                   "e": "j***@ex.com"},
                  {"k": "route", "m": "m1", "t": 1.1, "st": "users",
                   "to": [["mailmodo", "d1", "add_event"]], "drop": [["clevertap", "disabled"]]}))
    idx.add(_recs({"k": "in", "m": "m2", "t": 2.0, "src": "segment", "u": "u1", "h": h},
                  {"k": "try", "m": "m1", "t": 3.0, "d": "mailmodo", "id": "d1", "n": 1,
                   "s": 200, "r": "ok", "req": "addEvent"}, partition=3))
    assert [d["k"] for d in idx.outcomes("m1")] == ["in", "route", "try"]
    assert [t["message_id"] for t in lookup(idx, "u1")] == ["m2", "m1"]
    assert [t["message_id"] for t in lookup(idx, " Jo@Ex.com ")] == ["m2", "m1"]
    assert [t["message_id"] for t in lookup(idx, "u1", limit=1)] == ["m2"]
    assert lookup(idx, "nobody") == []
    assert [t["message_id"] for t in lookup(idx, " m1\n")] == ["m1"]  # pasted with spaces
    assert idx.next_offset(3) > idx.next_offset(0) > 0
    idx.close()
    reopened = TraceIndex(_path(tmp_path))  # the index survives: the next lookup reads less
    assert [d["k"] for d in reopened.outcomes("m1")] == ["in", "route", "try"]
    reopened.close()


def test_timeline_says_where_each_destination_ended():
    docs = [
        {"k": "in", "m": "m", "t": 1, "src": "segment", "u": "u"},
        {"k": "route", "m": "m", "t": 2, "to": [["mailmodo", "a", "add_event"],
                                                 ["mailjet", "b", "contact_upsert"]],
         "drop": [["clevertap", "disabled"]]},
        {"k": "try", "m": "m", "t": 3, "d": "mailmodo", "n": 1, "s": 429, "r": "retry",
         "b": "slow down", "req": "addEvent"},
        {"k": "try", "m": "m", "t": 4, "d": "mailmodo", "n": 2, "s": 200, "r": "ok",
         "req": "addEvent"},
        {"k": "try", "m": "m", "t": 3, "d": "mailjet", "n": 1, "s": 400, "r": "failed",
         "b": "bad", "req": "managecontact"},
        {"k": "dead", "m": "m", "t": 3.5, "stage": "delivery", "d": "mailjet", "r": "http_400",
         "s": 400, "n": 1},
    ]
    tl = timeline("m", docs)
    assert tl["destinations"] == {
        "mailmodo": {"state": "delivered", "attempts": 2, "status": 200, "body": "slow down"},
        "mailjet": {"state": "dead_lettered", "reason": "http_400", "status": 400,
                    "attempts": 1, "body": "bad"},
        "clevertap": {"state": "dropped", "reason": "disabled"}}
    text = render_text("m", [tl])
    assert "attempt 1       mailmodo addEvent -> HTTP 429 will retry  response: slow down" in text
    assert "dead-lettered   mailjet: http_400 (HTTP 400, 1 attempt(s))" in text
    assert "clevertap dropped (disabled)" in text and "mailmodo delivered (HTTP 200" in text
    assert "no outcomes for 'x'" in render_text("x", [])


def test_ingest_rows_read_as_in_outcomes_and_the_person_comes_from_the_route_outcome(tmp_path):
    from streamproc.config.settings import load_settings
    from streamproc.core.outcome_codec import decode_docs, partition_hash
    from streamproc.worker.outcomes import Outcomes

    o = Outcomes(load_settings({}), "outcomes")
    rows = [(f"m{i}", "segment", "segment.raw", 1, 100 + i) for i in range(30)]
    route = {"k": "route", "m": "m3", "t": 9e9, "st": "users", "to": [], "u": "u1",
             "e": "j***@ex.com", "h": person_hash("jo@ex.com")}
    outs = o.pack([route], rows)
    for _, _, value, _, group in outs:  # an input's rows and documents share a partition
        assert {partition_hash(d["m"]) % 6 for d in decode_docs(value)} == {group}
    idx = TraceIndex(tmp_path / "index")
    idx.add([SimpleNamespace(partition=g, offset=i, value=v)
             for i, (_, _, v, _, g) in enumerate(outs)])
    [tl] = lookup(idx, "Jo@Ex.com")
    assert [d["k"] for d in tl["events"]] == ["in", "route"]
    assert tl["events"][0] | {"t": 0} == {"k": "in", "m": "m3", "t": 0, "src": "segment",
                                          "tp": "segment.raw", "p": 1, "o": 103}
    assert (tl["source"], tl["user_id"], tl["email"]) == ("segment", "u1", "j***@ex.com")
    assert all(idx.outcomes(f"m{i}") for i in range(30))
    idx.close()



def test_an_email_like_user_id_masked_in_the_outcomes_still_finds_the_inputs(tmp_path):
    from types import SimpleNamespace as NS

    from streamproc.config.settings import load_settings
    from streamproc.worker.outcomes import Outcomes

    o = Outcomes(load_settings({}), "outcomes")
    nothing = NS(sink_records=[], drops=[], held=0)
    outs = o.pack([], (), o.routed("users", NS(message_id="m1", user_id="Jane@Ex.com",
                                               email_key=None), nothing)
                  + o.routed("users", NS(message_id="m2", user_id="jd@old.io",
                                         email_key="jane@new.io"), nothing))
    idx = TraceIndex(tmp_path / "index")
    idx.add([NS(partition=g, offset=i, value=v) for i, (_, _, v, _, g) in enumerate(outs)])
    assert [t["message_id"] for t in lookup(idx, "Jane@Ex.com")] == ["m1"]
    assert [t["message_id"] for t in lookup(idx, "jd@old.io")] == ["m2"]
    assert [t["message_id"] for t in lookup(idx, "jane@new.io")] == ["m2"]
    [tl] = lookup(idx, "jane@ex.com")
    assert tl["user_id"] == "J***@Ex.com"
    keys = b" ".join(k for k in idx.db.keys())
    assert b"Jane@Ex.com" not in keys and b"jd@old.io" not in keys  # nor in the index
    idx.close()


def test_a_derived_envelope_dead_lettered_after_its_input_was_routed_is_not_the_input_dead():
    """An identify routed at the users stage, whose contact update then crashed at the
    contacts stage: the input reached its destinations; the result line names the stage that
    dead-lettered the follow-up (and its redrive), not "input dead_lettered"."""
    docs = [
        {"k": "in", "m": "s1", "t": 1, "src": "segment"},
        {"k": "route", "m": "s1", "t": 2, "st": "users", "to": [["mailmodo", "a", "upsert"]]},
        {"k": "try", "m": "s1", "t": 3, "d": "mailmodo", "n": 1, "s": 200, "r": "ok"},
        {"k": "dead", "m": "s1", "t": 2.5, "stage": "routing", "st": "contacts",
         "r": "routing_error", "msg": "KeyError: 'x'", "tp": "t.by_contact", "dv": 1},
    ]
    tl = timeline("s1", docs)
    assert tl["destinations"] == {
        "mailmodo": {"state": "delivered", "attempts": 1, "status": 200},
        "contacts stage": {"state": "dead_lettered", "reason": "routing_error",
                           "stage": "routing"}}
    assert "contacts stage dead_lettered (routing_error)" in render_text("s1", [tl])
    redriven = timeline("s1", [*docs, {"k": "redrive", "m": "s1", "t": 5, "to": "t.by_contact"}])
    assert redriven["destinations"]["contacts stage"]["state"] == "redriven"
    assert "*" not in redriven["destinations"]
    # an input that crashed before any route: the input itself is dead-lettered
    alone = timeline("s2", [docs[0], {**docs[3], "st": "users", "dv": None}])
    assert alone["destinations"] == {"*": {"state": "dead_lettered", "reason": "routing_error",
                                           "stage": "routing"}}


def _dead(m, t, st, tp, **kw):
    return {"k": "dead", "m": m, "t": t, "stage": "routing", "st": st, "r": "routing_error",
            "tp": tp, **kw}


def test_an_input_that_crashed_itself_stays_the_input_after_a_later_successful_redrive():
    """Review of ba491d4: a route after the dead letter (the redriven input routed) must
    not turn the input's own crash into a stage's."""
    docs = [{"k": "in", "m": "s2", "t": 1, "src": "segment"},
            _dead("s2", 2, "users", "t.by_user"),
            {"k": "redrive", "m": "s2", "t": 5, "r": "routing_error", "to": "t.by_user"},
            {"k": "route", "m": "s2", "t": 6, "st": "users", "to": [["mailmodo", "a", "upsert"]]},
            {"k": "try", "m": "s2", "t": 7, "d": "mailmodo", "n": 1, "s": 200, "r": "ok"}]
    tl = timeline("s2", docs)
    assert set(tl["destinations"]) == {"*", "mailmodo"}
    assert tl["destinations"]["*"]["state"] == "redriven"
    assert "input redriven" in render_text("s2", [tl])


def test_a_redrive_is_shown_where_it_was_sent_not_on_the_last_dead_letter():
    """Two follow-ups of one alias dead-lettered at two stages; the contacts one redriven."""
    docs = [{"k": "in", "m": "a1", "t": 1, "src": "segment"},
            {"k": "route", "m": "a1", "t": 2, "st": "users", "to": [["mailmodo", "x", "upsert"]]},
            _dead("a1", 3, "contacts", "t.by_contact", dv=1),
            _dead("a1", 4, "users", "t.by_user", dv=1),
            {"k": "redrive", "m": "a1", "t": 5, "r": "routing_error", "to": "t.by_contact"}]
    d = timeline("a1", docs)["destinations"]
    assert d["contacts stage"]["state"] == "redriven"
    assert d["users stage"]["state"] == "dead_lettered"
    assert "*" not in d


def test_an_input_routed_before_under_its_id_that_crashes_is_the_input_dead():
    """A Mailjet event posted again (same event id), or a replay: its own crash is the
    input's dead letter, whatever was routed under the id before."""
    docs = [{"k": "in", "m": "e1", "t": 1, "src": "mailjet"},
            {"k": "route", "m": "e1", "t": 2, "st": "contacts", "to": [["mailmodo", "a", "ev"]]},
            {"k": "in", "m": "e1", "t": 10, "src": "mailjet"},
            _dead("e1", 11, "contacts", "t.by_contact")]
    d = timeline("e1", docs)["destinations"]
    assert d["*"]["state"] == "dead_lettered" and "contacts stage" not in d


def test_an_index_an_earlier_reader_built_is_read_again_and_only_its_own_files_go(tmp_path):
    """A reader before the flat rows decoded nothing from them and still moved its offsets
    past them: kept, that index would miss those inputs for good."""
    from rocksdict import Rdict

    path = _path(tmp_path)
    path.mkdir()
    (path / "notes.txt").write_text("the operator's")  # an --index-dir that held files too
    old = Rdict(str(path))  # what an earlier version left: offsets, outcomes, no format
    old[b"o:0"], old[b"m:m1"] = orjson.dumps(7), orjson.dumps([{"k": "in", "m": "m1"}])
    old.close()
    idx = TraceIndex(path)
    assert (idx.next_offset(0), idx.outcomes("m1")) == (0, [])  # read again from the start
    idx.add(_recs({"k": "in", "m": "m2", "t": 1.0, "src": "segment"}))
    idx.close()
    assert (path / "notes.txt").read_text() == "the operator's"
    idx = TraceIndex(path)  # this version's own index is kept
    assert idx.next_offset(0) > 0 and [d["m"] for d in idx.outcomes("m2")] == ["m2"]
    idx.close()


def test_a_document_whose_kind_is_not_a_string_is_skipped_not_fatal(tmp_path):
    idx = TraceIndex(_path(tmp_path))
    idx.add(_recs({"k": ["in"], "m": "m1", "t": 1.0}, {"k": {"a": 1}, "m": "m1", "t": 1.0},
                  {"k": "in", "m": "m1", "t": 2.0, "src": "segment"}))
    assert [d["k"] for d in idx.outcomes("m1")] == ["in"]
    assert lookup(idx, "m1")[0]["message_id"] == "m1"
    idx.close()
