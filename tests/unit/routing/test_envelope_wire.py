"""The internal envelopes' wire format is kept across the msgspec codec (issue 18): records a
previous version wrote to the repartition topics (or into held entries) before an upgrade are
read by the next. The bytes below are what the orjson-based encoder wrote (commit 8c6ab58);
the one change since: a Segment message's context is cut to what routing reads (traits,
personas)."""

from __future__ import annotations

import json

import pytest

from streamproc.core.events.mailmodo import parse_mailmodo
from streamproc.core.events.segment import parse_segment
from streamproc.core.routing.messages import (ContactUpdate, MergeUser, SweepPending, decode,
                                              encode)

SEGMENT = parse_segment(json.dumps({
    "type": "identify", "userId": "u1", "messageId": "m1",
    "traits": {"email": "A@x.io", "plan": "pro"}, "context": {"ip": "1.2.3.4"},
    "integrations": {"Mailjet": False}, "timestamp": "2024-05-01T10:00:00Z"}).encode())
MAILMODO = parse_mailmodo(json.dumps({
    "event": "opened", "email": "a@x.io", "timestamp": 1714557600, "campaign_name": "c1",
    "integrations": {"Segment": False}}).encode())
CASES = [
    (SEGMENT, b'{"kind":"segment","type":"identify","message_id":"m1","user_id":"u1",'
              b'"anonymous_id":null,"timestamp":1714557600.0,"traits":{"email":"A@x.io",'
              b'"plan":"pro"},"context":{"ip":"1.2.3.4"},"integrations":{"Mailjet":false},'
              b'"email":"A@x.io","email_key":"a@x.io","event":null,"properties":{},"name":null,'
              b'"group_id":null,"previous_id":null,"raw":{}}'),
    (MAILMODO, b'{"kind":"mailmodo","event":"opened","email":"a@x.io","email_key":"a@x.io",'
               b'"timestamp":1714557600.0,"fields":{"campaign_name":"c1"},"clevertap_id":null,'
               b'"event_id":"mm-d75e78b6320beb83743fe66f3f3f9b43",'
               b'"raw":{"integrations":{"Segment":false}}}'),
    (ContactUpdate(email="A@x.io", email_key="a@x.io", user_id="u1", anonymous_id=None,
                   traits={"plan": "pro"}, timestamp=1714557600.5, source_id="m1",
                   trait_ts={"plan": 1714557600.5}),
     b'{"kind":"contact_update","email":"A@x.io","email_key":"a@x.io","user_id":"u1",'
     b'"anonymous_id":null,"traits":{"plan":"pro"},"timestamp":1714557600.5,"identified":true,'
     b'"source_id":"m1","trait_ts":{"plan":1714557600.5}}'),
    (MergeUser(user_id="u2", previous_id="u1", state={"user_id": "u1", "emails": ["a@x.io"]},
               timestamp=1.0, source_id="m9"),
     b'{"kind":"merge_user","user_id":"u2","previous_id":"u1","state":{"user_id":"u1",'
     b'"emails":["a@x.io"]},"timestamp":1.0,"source_id":"m9"}'),
    (SweepPending("u1"), b'{"kind":"sweep_pending","user_id":"u1"}'),
]


@pytest.mark.parametrize("obj,wire", CASES, ids=lambda c: type(c).__name__)
def test_the_previous_encoders_bytes_are_read(obj: object, wire: bytes) -> None:
    decoded = decode(wire)
    assert type(decoded) is type(obj)
    if hasattr(obj, "raw"):  # the envelope carries only the integrations of the original
        assert decoded.raw == json.loads(wire)["raw"]
        decoded.raw = obj.raw  # type: ignore[union-attr]
    assert decoded == obj


@pytest.mark.parametrize("obj,wire", CASES, ids=lambda c: type(c).__name__)
def test_the_same_bytes_are_written_but_a_segment_context(obj: object, wire: bytes) -> None:
    if obj is SEGMENT:
        wire = wire.replace(b'"context":{"ip":"1.2.3.4"}', b'"context":{}')
    assert encode(obj) == wire  # type: ignore[arg-type]


def test_a_segment_context_keeps_traits_and_personas() -> None:
    event = parse_segment(json.dumps({
        "type": "track", "userId": "u1", "event": "E", "timestamp": 1714557600,
        "context": {"traits": {"email": "a@x.io"}, "personas": {"computation_key": "k"},
                    "userAgent": "x" * 500, "library": {"name": "analytics.js"}}}).encode())
    wire = encode(event)
    assert decode(wire).context == {"traits": {"email": "a@x.io"},
                                    "personas": {"computation_key": "k"}}
    assert len(wire) < 500 and len(event.context) == 4  # the event itself is left whole


def test_encoding_leaves_the_event_whole() -> None:
    before = dict(MAILMODO.raw)
    encode(MAILMODO)
    assert MAILMODO.raw == before and "campaign_name" in MAILMODO.raw


@pytest.mark.parametrize("wire,why", [
    (b'{"kind":"nope","user_id":"u1"}', "bad envelope"),
    (b'{"user_id":"u1"}', "bad envelope"),
    (b'[1,2]', "bad envelope"),
    (b'{"kind":"sweep_pending"}', "bad envelope"),
    (b'{"kind":"sweep_pending","user_id":5}', "bad envelope"),
    (b'{"kind":', "not JSON"),
])
def test_a_bad_envelope_is_a_value_error(wire: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode(wire)


def test_unknown_fields_of_a_newer_version_are_ignored() -> None:
    assert decode(b'{"kind":"sweep_pending","user_id":"u1","new":1}') == SweepPending("u1")


def test_the_structs_are_not_tracked_by_the_cyclic_gc() -> None:
    """gc=False (issue 18): plain data without cycles; tracked, they made the GC's
    collections cost more per input than msgspec saved."""
    import gc

    from streamproc.core.routing.messages import KINDS
    from streamproc.core.state.model import Contact, KnownUser

    assert not gc.is_tracked(SEGMENT) and not gc.is_tracked(MAILMODO)
    assert not gc.is_tracked(decode(encode(SEGMENT)))
    assert not gc.is_tracked(KnownUser.loads(KnownUser(user_id="u", traits={"a": [1]}).dumps()))
    assert not gc.is_tracked(Contact(email="a@x.io", pending=[{"k": 1}]))
    assert all(cls.__struct_config__.gc is False for cls in KINDS.values())
