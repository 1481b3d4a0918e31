"""Outcome records (streamproc/worker/outcomes.py): shapes, partitioning by message id, masking of
emails and scrubbing of secrets, and the delivery-side recorder the engine calls."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from streamproc.core.errors import Permanent, Retryable
from streamproc.core import outcome_codec
from streamproc.core.outcome_codec import decode_docs, partition_hash, person_hash, raw_message_id
from streamproc.worker.outcomes import AttemptRecorder, Outcomes, message_id
from streamproc.worker.scrub import Scrubber, mask_email
from streamproc.config.settings import load_settings
from streamproc.core.records import SinkRecord
from streamproc.core.routing.drops import Drop

ENV = {"STREAMPROC_MAILMODO_API_KEY": "mm-key-0123456789",
       "STREAMPROC_SEGMENT_WRITE_KEY": "seg-write-key-abc"}


def _outcomes(**env: str) -> Outcomes:
    return Outcomes(load_settings({**ENV, **env}), "outcomes")


def _docs(outs):
    """Outcome documents: a list of them from the methods, flat `route` rows (routed: a
    message id first), else packed records."""
    if outs and isinstance(outs[0], dict):
        return orjson.loads(orjson.dumps(outs))
    if outs and isinstance(outs[0], str):
        return decode_docs(orjson.dumps([{"k": "routes", "t": 0, "f": outs}]))
    return [doc for o in outs for doc in decode_docs(o[2])]


def test_masks_emails_and_scrubs_secrets_and_truncates():
    s = Scrubber(["mm-key-0123456789"], mask=True, limit=120)
    body = ('{"error": "bad", "email": "Jane.Doe@Example.com", "api_key": "abc123", '
            '"echo": "mm-key-0123456789", "h": "Authorization: Bearer eyJ.x.y"}')
    out = s(body)
    assert "Jane.Doe" not in out and "J***@Example.com" in out
    assert "abc123" not in out and "mm-key-0123456789" not in out and "eyJ" not in out
    assert len(s("x" * 1000)) == 120
    assert Scrubber(mask=False)("a jane@example.com b") == "a jane@example.com b"
    assert mask_email("x@y.io") == "x***@y.io"


def test_outcomes_of_one_input_share_a_partition_packed_per_partition():
    o = _outcomes()
    docs = [{"k": "in", "m": f"msg-{i % 50}", "n": i} for i in range(1200)]
    outs = o.pack(docs)
    seen: dict[str, set[int]] = {}
    for topic, key, value, headers, group in outs:
        assert (topic, key, headers) == ("outcomes", None, None) and 0 <= group < 6
        packed = decode_docs(value)
        assert 0 < len(packed) <= 500
        for doc in packed:
            assert group == partition_hash(doc["m"]) % 6
            seen.setdefault(doc["m"], set()).add(group)
    assert all(len(groups) == 1 for groups in seen.values()) and len(seen) == 50
    assert sum(len(decode_docs(v)) for _, _, v, _, _ in outs) == 1200
    assert decode_docs(b'{"m": "x"}') == [{"m": "x"}] and decode_docs(None) == []
    assert partition_hash("msg-1") == partition_hash("msg-1") != partition_hash("msg-2")


def test_agent_batches_stash_outcomes_until_taken():
    from streamproc.worker.outcomes import ingest_outs, take_outcomes

    o = _outcomes()
    rt = SimpleNamespace(outcomes=o)
    ev = SimpleNamespace(message_id="m1", user_id=None, email_key=None)
    m = SimpleNamespace(topic="t", partition=0, offset=1, value=b"{}")
    assert ingest_outs(rt, "segment", m, [ev], [], True) == []
    assert [d["m"] for d in _docs(take_outcomes(rt))] == ["m1"]
    assert take_outcomes(rt) == []
    assert [d["m"] for d in _docs(ingest_outs(rt, "segment", m, [ev], [], False))] == ["m1"]
    assert ingest_outs(SimpleNamespace(outcomes=None), "s", m, [ev], [], True) == []


def test_ingested_rows_and_the_route_outcome_carries_the_person_masked_unless_turned_off():
    from streamproc.worker.outcomes import ingest_outs

    ev = SimpleNamespace(message_id="m1", user_id="u1", email="Jo@Ex.com", email_key="jo@ex.com")
    m = SimpleNamespace(topic="segment.raw", partition=2, offset=7, value=b"{}")
    rt = SimpleNamespace(outcomes=_outcomes())
    [doc] = _docs(ingest_outs(rt, "segment", m, [ev], [], False))
    assert doc | {"t": 0} == {"k": "in", "m": "m1", "t": 0, "src": "segment",
                              "tp": "segment.raw", "p": 2, "o": 7}
    nothing = SimpleNamespace(sink_records=[], drops=[], held=0)
    [route] = _docs(_outcomes().routed("users", ev, nothing))  # an input always gets one
    assert (route["k"], route["m"], route["to"]) == ("route", "m1", [])
    assert (route["u"], route["e"], route["h"]) == ("u1", "j***@ex.com", person_hash("JO@ex.com "))
    [plain] = _docs(_outcomes(STREAMPROC_OUTCOMES_MASK_EMAILS="off").routed("users", ev, nothing))
    assert plain["e"] == "jo@ex.com"
    assert _outcomes().routed("contacts", _Derived(), nothing) == []


class _Derived:  # an envelope derived from an input (alias merge, contact update)
    source_id, email_key, user_id = "m1", "jo@ex.com", None


def test_unparseable_input_is_ingested_and_dead_under_its_own_id():
    m = SimpleNamespace(topic="t", partition=0, offset=5, value=b'{"messageId": "x9", "type": 1}')
    err = SimpleNamespace(reason="bad_type", message="type is not a string")
    docs = _docs(_outcomes().ingest_dead("segment", m, [err]))
    assert [(d["k"], d["m"]) for d in docs] == [("in", "x9"), ("dead", "x9")]
    assert docs[1]["stage"] == "ingest" and docs[1]["r"] == "bad_type"
    assert raw_message_id(SimpleNamespace(topic="t", partition=1, offset=2, value=b"{")) \
        == "t:1:2"


def _sink(mid: str, dest: str = "mailmodo", rid: str = "d1") -> SinkRecord:
    return SinkRecord(destination=dest, op="add_event", key="jo@ex.com", id=rid, payload={},
                      source={"message_id": mid})


def test_routed_lists_destinations_drops_and_holds_per_input():
    msg = SimpleNamespace(message_id="m1")
    res = SimpleNamespace(sink_records=[_sink("m1", "mailmodo", "a"), _sink("m1", "mailjet", "b"),
                                        _sink("older", "mailmodo", "c")],
                          drops=[Drop("segment", "clevertap", "disabled")], held=0)
    docs = {d["m"]: d for d in _docs(_outcomes().routed("users", msg, res))}
    assert docs["m1"]["to"] == [["mailmodo", "a", "add_event"], ["mailjet", "b", "add_event"]]
    assert docs["m1"]["drop"] == [["clevertap", "disabled"]]
    assert docs["older"]["to"] == [["mailmodo", "c", "add_event"]]  # a released hold
    assert docs["m1"]["h"] == person_hash("jo@ex.com")  # found by email too
    by_user_key = SinkRecord(destination="mailmodo", op="add_event", key="u1", id="e",
                             payload={"email": "Jo@Ex.com"}, source={"message_id": "m3"})
    [doc] = _docs(_outcomes().routed("users", SimpleNamespace(message_id="m3", user_id="u1"),
                                     SimpleNamespace(sink_records=[by_user_key], drops=[])))
    assert (doc["h"], doc["u"]) == (person_hash("jo@ex.com"), "u1")
    held = SimpleNamespace(sink_records=[], drops=[], held=1)
    [doc] = _docs(_outcomes().routed("users", msg, held))
    assert doc["held"] == 1

    class MailjetLike:  # a Mailjet event has both: its own MessageID, and the input's id
        event_id, message_id = "e1", "mj"

    assert message_id(MailjetLike()) == "e1"


def test_recorder_keeps_each_attempt_and_the_dead_record():
    o = _outcomes()
    rec = AttemptRecorder(o, "mailmodo")
    request = SimpleNamespace(kind="addEvent")
    r = _sink("m1")
    rec(request, 429, '{"message": "slow down"}', [(r, 1, Retryable("HTTP 429"))])
    rec(request, 200, "{}", [(r, 2, None)])
    r2 = _sink("m2", rid="d2")
    rec(request, 400, '{"message": "bad", "email": "jo@ex.com", "api_key": "mm-key-0123456789"}',
        [(r2, 1, Permanent("HTTP 400"))])
    dead = SimpleNamespace(record=r2, reason="http_400", status=400, attempts=1)
    docs = _docs(rec.take([dead]))
    assert [(d["m"], d["k"], d.get("n"), d["s"], d.get("r")) for d in docs] == [
        ("m1", "try", 1, 429, "retry"), ("m1", "try", 2, 200, "ok"),
        ("m2", "try", 1, 400, "failed"), ("m2", "dead", 1, 400, "http_400")]
    assert "mm-key" not in docs[2]["b"] and "j***@ex.com" in docs[2]["b"]
    assert rec.take() == []
    assert [f["s"] for f in o.recent_failures("mailmodo")] == [400, 429]


def test_outcomes_setting_switches_off_and_validates():
    assert load_settings({}).outcomes.enabled is True
    assert load_settings({"STREAMPROC_OUTCOMES": "off"}).outcomes.enabled is False
    try:
        load_settings({"STREAMPROC_OUTCOMES_BODY_CHARS": "5000"})
    except Exception as e:
        assert "STREAMPROC_OUTCOMES_BODY_CHARS" in str(e)
    else:
        raise AssertionError("5000 accepted")


def test_redrive_and_replay_outcomes_name_the_input():
    from streamproc.ops.outcomes_cli import redrive_docs, replay_docs

    sink = _sink("m7", rid="d7")
    entry = SimpleNamespace(doc={"destination": "mailmodo", "reason": "http_400",
                                 "record": sink.to_dict()}, topic="dlq", partition=0, offset=3)
    [doc] = redrive_docs([SimpleNamespace(entry=entry, value=b"", topic="sink.mailmodo")])
    assert (doc["k"], doc["m"], doc["d"], doc["id"], doc["r"]) == (
        "redrive", "m7", "mailmodo", "d7", "http_400")
    ingest = SimpleNamespace(doc={"reason": "not_json"}, topic="dlq.ingest", partition=1, offset=9)
    [doc] = redrive_docs([SimpleNamespace(entry=ingest, value=b'{"messageId": "raw-1"}',
                                          topic="segment.raw")])
    assert doc["m"] == "raw-1"
    [doc] = replay_docs("sink", "mailmodo", SimpleNamespace(value=sink.dumps()), "sink.mailmodo")
    assert doc["m"] == "m7" and "f" not in doc
    assert replay_docs("sink", "mailmodo", SimpleNamespace(value=sink.dumps()), "sink.mailmodo",
                       forced=True)[0]["f"] == 1
    raw = SimpleNamespace(value=b'{"messageId": "r2"}', topic="t", partition=0, offset=1,
                          timestamp=None, headers=None)  # no type: not parsed, its own id
    assert [d["m"] for d in replay_docs("input", "segment", raw, "t")] == ["r2"]


def test_install_switches_the_worker_off():
    from streamproc.config.topology import load_topology
    from streamproc.worker.outcomes import install, routing_outs

    topo = load_topology("topics.yaml")
    off = SimpleNamespace(settings=load_settings({"STREAMPROC_OUTCOMES": "off"}),
                          topology=topo, outcomes="unset")
    assert install(off) is None and off.outcomes is None
    res = SimpleNamespace(sink_records=[_sink("m1")], drops=[], held=0)
    assert routing_outs(off, "users", SimpleNamespace(message_id="m1"), res, False) == []
    on = SimpleNamespace(settings=load_settings({}), topology=topo, outcomes=None)
    o = install(on)
    assert (o.topic, o.partitions) == ("streamproc.outcomes", 6)
    assert _docs(routing_outs(on, "users", SimpleNamespace(message_id="m1"), res, False))


def test_packed_records_stay_under_the_size_limit_with_every_document_kept():
    """500 `try` documents with 2000-char bodies are ~1.2 MB as one array: over the broker's
    ~1 MB record limit, which send_all would retry forever. Packing splits by size too."""
    from streamproc.core.outcome_codec import MAX_VALUE

    o = _outcomes(STREAMPROC_OUTCOMES_BODY_CHARS="2000")
    o.partitions = 1  # all in one group: the worst case
    rec = AttemptRecorder(o, "mailmodo")
    body = '{"message": "' + "x" * 4000 + '"}'
    sinks = [_sink(f"m{i}", rid=f"d{i}") for i in range(500)]
    rec(SimpleNamespace(kind="addEvent"), 400, body,
        [(s, 1, Permanent("HTTP 400 " + "y" * 300)) for s in sinks])
    outs = rec.take()
    assert len(outs) > 1 and all(len(v) <= MAX_VALUE for _, _, v, _, _ in outs)
    assert sorted(d["m"] for o_ in outs for d in decode_docs(o_[2])) == sorted(
        f"m{i}" for i in range(500))
    rows = [(f"m{i}-" + "z" * 3000, "segment", "t", 0, i) for i in range(500)]  # huge ids
    outs = o.pack([], rows)
    assert all(len(v) <= MAX_VALUE for _, _, v, _, _ in outs)
    assert len([d for o_ in outs for d in decode_docs(o_[2])]) == 500


def test_a_document_larger_than_a_record_is_cut_down_or_dropped_and_counted():
    from streamproc.core.outcome_codec import MAX_VALUE

    o = _outcomes()
    big = {"k": "try", "m": "m1", "t": 0, "d": "mailmodo", "b": "x" * (MAX_VALUE + 10),
           "err": "e" * (MAX_VALUE + 10)}
    [(_, _, value, _, _)] = o.pack([big])
    [doc] = decode_docs(value)
    assert len(value) <= MAX_VALUE and doc["m"] == "m1" and doc["d"] == "mailmodo"
    assert len(doc["b"]) < MAX_VALUE and o.oversized == 0
    hopeless = {"k": "dead", "m": "m" * (MAX_VALUE + 10), "t": 0}
    assert o.pack([hopeless, {"k": "dead", "m": "m2", "t": 0}]) and o.oversized == 1
    assert [d["m"] for _, _, v, _, _ in o.pack([hopeless]) for d in decode_docs(v)] == []


def test_an_email_like_user_id_is_masked_in_the_route_outcome_unless_turned_off():
    """Segment userIds are often emails: with masking on, the outcome documents hold no
    unmasked one; its hash (h, or uh when the person's email differs) still finds it."""
    nothing = SimpleNamespace(sink_records=[], drops=[], held=0)
    ev = SimpleNamespace(message_id="m1", user_id="Jane.Doe@Example.com", email_key=None)
    rows = _outcomes().routed("users", ev, nothing)
    outs = _outcomes().pack([], (), rows)
    assert b"Jane.Doe" not in b"".join(v for _, _, v, _, _ in outs)
    [doc] = _docs(outs)
    assert (doc["u"], doc["h"]) == ("J***@Example.com", person_hash("jane.doe@example.com"))
    other = SimpleNamespace(message_id="m2", user_id="jd@old.io", email_key="jane@new.io")
    [doc] = _docs(_outcomes().pack([], (), _outcomes().routed("users", other, nothing)))
    assert (doc["u"], doc["e"], doc["h"], doc["uh"]) == (
        "j***@old.io", "j***@new.io", person_hash("jane@new.io"), person_hash("jd@old.io"))
    [plain] = _docs(_outcomes(STREAMPROC_OUTCOMES_MASK_EMAILS="off").routed("users", ev, nothing))
    assert plain["u"] == "Jane.Doe@Example.com" and "uh" not in plain
    [doc] = _docs(_outcomes().routed("users", SimpleNamespace(message_id="m3", user_id="u-7",
                                                              email_key=None), nothing))
    assert doc["u"] == "u-7" and "h" not in doc  # a userId that is no email stays as it is


def test_the_person_cache_keeps_no_key_longer_than_an_email():
    """A userId with an '@' is any string up to a record's size: the 50,000 (and 100,000
    hashes) kept could hold gigabytes. Longer than an email can be, it is masked, not kept."""
    nothing = SimpleNamespace(sink_records=[], drops=[], held=0)
    o, long_id = _outcomes(), "x" * 5000 + "@example.com"
    ev = SimpleNamespace(message_id="m1", user_id=long_id, email_key="jo@ex.com")
    [doc] = _docs(o.routed("users", ev, nothing))
    assert doc["u"] == "x***@example.com" and doc["uh"] == person_hash(long_id)
    assert long_id not in o._people and "jo@ex.com" in o._people
    assert long_id not in outcome_codec._HASHES and "jo@ex.com" in outcome_codec._HASHES


def test_every_configured_secret_is_scrubbed_from_outcomes_as_from_logs():
    """The Kafka SASL password and the Basic tokens built from the credentials too (review:
    the outcome scrubber had its own, shorter list than the log filter's secrets_of)."""
    import base64

    o = _outcomes(STREAMPROC_KAFKA_SASL_PASSWORD="kafka-pass-xyz",
                  STREAMPROC_MAILJET_API_KEY="mj-public", STREAMPROC_MAILJET_API_SECRET="mj-sec-42")
    token = base64.b64encode(b"mj-public:mj-sec-42").decode()
    text = o.scrub(f"auth failed for kafka-pass-xyz; header was {token}; key mj-public")
    assert "kafka-pass-xyz" not in text and token not in text and "mj-public" not in text


def test_a_secret_that_is_a_common_word_does_not_switch_the_masks_off():
    """Configured credentials are removed after the header and field masks ran (review: a
    SASL password "Basic" or "password" replaced first left the masks nothing to key on)."""
    assert "dXNlcjpodW50ZXIy" not in Scrubber(["Basic"])("Authorization: Basic dXNlcjpodW50ZXIy")
    assert "hunter2" not in Scrubber(["password"])('{"password": "hunter2"}')
    assert "s3cret-value" not in Scrubber(["s3cret-value"])("echo s3cret-value")
