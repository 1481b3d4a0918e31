"""The flat layout of the `in` and `route` rows (streamproc/core/outcome_codec.py): the batch's
stash holds no container per input, the rows read back as the documents the nested rows gave
(which are still read), a malformed document never makes the reader raise, and a document too
large for a record is split between rows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from streamproc.config.settings import load_settings
from streamproc.core.outcome_codec import MAX_VALUE, decode_docs, person_hash
from streamproc.core.records import SinkRecord
from streamproc.core.routing.drops import Drop
from streamproc.worker.outcomes import Outcomes, ingest_outs, routing_outs

ATOMS = (str, int, float, type(None))


def _outcomes() -> Outcomes:
    return Outcomes(load_settings({}), "outcomes")


def _sink(mid: str, dest: str, rid: str, email: str = "") -> SinkRecord:
    return SinkRecord(destination=dest, op="add_event", key=email or "u1", id=rid,
                      payload={"email": email} if email else {}, source={"message_id": mid})


class _Derived:  # a follow-up envelope (an alias merge): traced under its input's id
    source_id, user_id, email_key = "m4", None, None


class _NoId:  # no id of its own: rows for the inputs its sink records name only
    user_id = email_key = None


def _results() -> list[tuple[Any, Any]]:
    """(message, routing result) pairs covering every field of a route row, the inputs
    without an id of their own, and released holds of other inputs."""
    return [
        (_Derived(), SimpleNamespace(sink_records=[_sink("m4", "mailjet", "e")], drops=[],
                                     holds=False, held=3)),
        (_NoId(), SimpleNamespace(sink_records=[
            _sink("r1", "mailmodo", "f", "r1@ex.com"), _sink("r2", "segment", "g"),
            _sink("r1", "mailjet", "h")], drops=[], held=0)),
        (SimpleNamespace(message_id="m6", user_id="Solo@Ex.com", email_key=None),
         SimpleNamespace(sink_records=[], drops=[], held=0)),
        (SimpleNamespace(message_id="m1", user_id="u1", email_key="jo@ex.com"),
         SimpleNamespace(sink_records=[_sink("m1", "mailmodo", "a"), _sink("m1", "mailjet", "b"),
                                       _sink("old", "mailmodo", "c", "ann@ex.com")],
                         drops=[Drop("segment", "clevertap", "disabled")], held=0)),
        (SimpleNamespace(message_id="m2", user_id="jd@old.io", email_key="jane@new.io"),
         SimpleNamespace(sink_records=[], drops=[], held=2)),
        (SimpleNamespace(message_id="m3", user_id="Jane@Ex.com", email_key=None),
         SimpleNamespace(sink_records=[_sink("m3", "segment", "d", "jane@ex.com")],
                         drops=[Drop("segment", "mailjet", "no_email"),
                                Drop("segment", "clevertap", "disabled")], held=0)),
    ]


def test_the_batch_stash_holds_no_container_per_input() -> None:
    """A list or tuple per input, kept to the batch's end, is walked by every collection
    meanwhile (README, Benchmarks, Outcomes): the stash is flat lists of strings and numbers."""
    o = _outcomes()
    rt = SimpleNamespace(outcomes=o)
    for msg, res in _results():
        routing_outs(rt, "users", msg, res, True)
        ingest_outs(rt, "segment", SimpleNamespace(topic="t", partition=0, offset=7), [msg], [],
                    True)
    assert o.routes and all(isinstance(x, ATOMS) for x in o.routes)
    parts = [x for per in o.ins.values() for part in per for x in part]
    assert len(parts) == 3 * 5 and all(isinstance(x, ATOMS) for x in parts)  # 5 with an id


def test_flat_rows_read_back_as_the_nested_rows_of_earlier_writers_did() -> None:
    """Records an earlier version wrote stay on the topic for the retention: both forms give
    the same documents."""
    o = _outcomes()
    flat: list[Any] = []
    for msg, res in _results():
        flat += o.routed("users", msg, res)
    e1, h1 = "j***@ex.com", person_hash("jo@ex.com")
    nested = [
        ["m4", "users", [["mailjet", "e", "add_event"]], None, None, None, None, None],
        ["r1", "users", [["mailmodo", "f", "add_event"], ["mailjet", "h", "add_event"]], None,
         None, None, None, person_hash("r1@ex.com")],
        ["r2", "users", [["segment", "g", "add_event"]], None, None, None, None, None],
        ["m6", "users", [], None, None, "S***@Ex.com", None, person_hash("solo@ex.com")],
        ["m1", "users", [["mailmodo", "a", "add_event"], ["mailjet", "b", "add_event"]],
         [["clevertap", "disabled"]], None, "u1", e1, h1],
        ["old", "users", [["mailmodo", "c", "add_event"]], None, None, None, None,
         person_hash("ann@ex.com")],
        ["m2", "users", [], None, 2, "j***@old.io", "j***@new.io", person_hash("jane@new.io"),
         person_hash("jd@old.io")],
        ["m3", "users", [["segment", "d", "add_event"]],
         [["mailjet", "no_email"], ["clevertap", "disabled"]], None, "J***@Ex.com", None,
         person_hash("jane@ex.com")],
    ]
    read = decode_docs(orjson.dumps([{"k": "routes", "t": 5, "f": flat}]))
    assert read == decode_docs(orjson.dumps([{"k": "routes", "t": 5, "r": nested}]))
    assert [d["m"] for d in read] == ["m4", "r1", "r2", "m6", "m1", "old", "m2", "m3"]
    assert "held" not in read[0] and read[6]["held"] == 2  # not a holding stage: no count
    assert read[7]["h"] == person_hash("Jane@Ex.com") and "uh" in read[6]
    ins = decode_docs(orjson.dumps([{"k": "ins", "t": 5, "src": "s", "tp": "t",
                                     "f": ["a", 0, 1, "b", 2, 3]}]))
    assert ins == decode_docs(orjson.dumps([{"k": "ins", "t": 5, "src": "s", "tp": "t",
                                             "r": [["a", 0, 1], ["b", 2, 3]]}]))


def test_a_malformed_flat_document_reads_up_to_its_first_bad_row_and_never_raises() -> None:
    good = ["m1", "users", None, None, None, None, None, 0, 1, "mailmodo", "a", "add_event"]
    for bad in (["m2", "users"], ["m2", "users", None, None, None, None, None, "1", 0],
                ["m2", "users", None, None, None, None, None, 0, 5, "x"],
                ["m2", "users", None, None, None, None, None, -1, 0],
                [7, "users", None, None, None, None, None, 0, 0]):
        docs = decode_docs(orjson.dumps([{"k": "routes", "t": 0, "f": good + bad}]))
        assert [d["m"] for d in docs] == ["m1"], bad
    for flag in (True, False):  # JSON booleans are no counts (bool is an int in Python)
        bad = ["m2", "users", None, None, None, None, None, 0, flag, "mailmodo", "b", "x"]
        docs = decode_docs(orjson.dumps([{"k": "routes", "t": 0, "f": good + bad}]))
        assert [d["m"] for d in docs] == ["m1"], flag
    for f in ("x", 3, {"a": 1}, None, True):
        assert decode_docs(orjson.dumps([{"k": "routes", "f": f, "r": f},
                                         {"k": "ins", "f": f, "r": f}])) == []
    # a bad field of one document costs that document only, not the record's others
    mixed = [{"k": "routes", "r": 7}, {"k": "routes", "t": 0, "f": good}, {"k": "ins", "r": True}]
    assert [d["m"] for d in decode_docs(orjson.dumps(mixed))] == ["m1"]
    assert [d["m"] for d in decode_docs(orjson.dumps([{"k": "ins", "f": [5, 0, 1, "b", 2, 3]}]))
            ] == ["b"]
    assert [d["m"] for d in decode_docs(orjson.dumps([{"k": "ins", "f": ["a", 0, 1, "b"]}]))
            ] == ["a"]


def test_an_ins_document_too_large_for_a_record_is_split_between_rows() -> None:
    o = _outcomes()
    o.partitions = 1
    rows = [(f"m{i}-" + "z" * 1000, "segment", "t", 0, i) for i in range(1001)]
    outs = o.pack([], rows)
    assert len(outs) > 1 and all(len(v) <= MAX_VALUE for _, _, v, _, _ in outs)
    docs = [d for _, _, v, _, _ in outs for d in decode_docs(v)]
    assert [(d["m"].split("-")[0], d["p"], d["o"]) for d in docs] == [
        (f"m{i}", 0, i) for i in range(1001)]
    assert o.oversized == 0


def test_a_routes_document_too_large_for_a_record_is_split_between_rows() -> None:
    """Each part a whole number of rows: a split inside a row would lose it and the rows after."""
    o = _outcomes()
    o.partitions = 1  # all in one document: the worst case
    flat: list[Any] = []
    for i in range(400):
        msg = SimpleNamespace(message_id=f"m{i}-" + "z" * 2000, user_id="u1", email_key=None)
        res = SimpleNamespace(sink_records=[_sink(msg.message_id, "mailmodo", f"d{i}")],
                              drops=[Drop("segment", "mailjet", "no_email")] * (i % 3), held=0)
        flat += o.routed("users", msg, res)
    outs = o.pack([], (), flat)
    assert len(outs) > 1 and all(len(v) <= MAX_VALUE for _, _, v, _, _ in outs)
    docs = [d for _, _, v, _, _ in outs for d in decode_docs(v)]
    assert [d["m"].split("-")[0] for d in docs] == [f"m{i}" for i in range(400)]
    assert [len(d.get("drop", ())) for d in docs] == [i % 3 for i in range(400)]
    assert o.oversized == 0
