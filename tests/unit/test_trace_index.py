"""streamproc trace's local index (RocksDB) and timelines: lookups by message id, email and
userId over outcome records, and where each destination ended, as text."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from streamproc.outcomes import encode_docs, person_hash
from streamproc.trace import TraceIndex, lookup, timeline
from streamproc.trace_view import render_text

OFFSETS = iter(range(10_000))


def _recs(*docs, partition=0):
    """One record per document, alternating the three value forms the topic may hold."""
    forms = (orjson.dumps, lambda d: orjson.dumps([d]), lambda d: encode_docs([d]))
    return [SimpleNamespace(partition=partition, offset=next(OFFSETS), value=forms[i % 3](d))
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
