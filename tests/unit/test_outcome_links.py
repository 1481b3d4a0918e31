"""A userId's route rows carry the email its sink records went to (h) once per period per
worker, not on every row (streamproc/worker/outcomes.py, LINK_S); the trace index links that
email hash to the userId (`l:` keys, streamproc/ops/trace.py), so `trace <email>` still finds
every input of the userId."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from streamproc.config.settings import load_settings
from streamproc.core.outcome_codec import decode_docs, person_hash
from streamproc.core.records import SinkRecord
from streamproc.ops.trace import TraceIndex, lookup
from streamproc.worker.outcomes import Outcomes

H = person_hash("jo@ex.com")


def _track(mid: str, user_id: str = "u1", email: str = "Jo@Ex.com") -> tuple[Any, Any]:
    msg = SimpleNamespace(message_id=mid, user_id=user_id, email_key=None)
    sink = SinkRecord(destination="mailmodo", op="add_event", key=user_id, id=f"d-{mid}",
                      payload={"email": email}, source={"message_id": mid})
    return msg, SimpleNamespace(sink_records=[sink], drops=[], holds=[], held=0)


def _rows(o: Outcomes, *mids: str, **kw: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for mid in mids:
        o.route_rows("users", *_track(mid, **kw), rows)
    return rows


def test_a_user_ids_sink_email_is_written_once_per_period() -> None:
    o = Outcomes(load_settings({}), "outcomes")
    first, second = _rows(o, "m1", "m2")
    assert (first[5], first[7]) == ("u1", H)
    assert (second[5], second[7]) == ("u1", None)  # linked already this period
    [other] = _rows(o, "m3", user_id="u2")  # another userId: its own link
    assert other[7] == H
    o.period += 1  # the next period (take() sets it from the clock)
    [again] = _rows(o, "m4")
    assert again[7] == H


def test_a_row_without_a_user_id_always_carries_its_sink_email() -> None:
    o = Outcomes(load_settings({}), "outcomes")
    msg = SimpleNamespace(message_id="x", user_id=None, email_key=None)
    for mid in ("a1", "a2"):
        _m, res = _track(mid)
        rows: list[list[Any]] = []
        o.route_rows("users", SimpleNamespace(**{**vars(msg), "message_id": mid}), res, rows)
        assert rows[0][7] == H


def _records(rows: list[list[Any]], t: float) -> list[Any]:
    value = orjson.dumps([{"k": "routes", "t": t, "r": rows}])
    return [SimpleNamespace(partition=0, offset=int(t), value=value)]


def test_trace_by_email_finds_the_user_ids_inputs_without_the_email(tmp_path: Any) -> None:
    o = Outcomes(load_settings({}), "outcomes")
    idx = TraceIndex(tmp_path / "index")
    rows = _rows(o, "m1", "m2")
    assert "h" not in decode_docs(_records(rows, 1.0)[0].value)[1]
    idx.add(_records(rows[:1], 1.0))
    idx.add(_records(rows[1:], 2.0))  # read later: the link is in the index already
    assert [t["message_id"] for t in lookup(idx, " JO@ex.com")] == ["m2", "m1"]
    assert [t["message_id"] for t in lookup(idx, "u1")] == ["m2", "m1"]
    idx.close()


def test_a_masked_user_id_is_not_linked(tmp_path: Any) -> None:
    idx = TraceIndex(tmp_path / "index")
    doc = {"k": "route", "m": "m1", "t": 1.0, "st": "users", "to": [], "u": "j***@ex.com",
           "h": H}
    idx.add([SimpleNamespace(partition=0, offset=0, value=orjson.dumps([doc]))])
    assert idx.db.get(f"l:{H}".encode()) is None
    assert [t["message_id"] for t in lookup(idx, "jo@ex.com")] == ["m1"]  # by its hash
    idx.close()
