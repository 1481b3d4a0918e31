"""Segment parser: fixture cases plus properties that fixtures cannot express."""

from __future__ import annotations

import json

import pytest

from event_cases import check
from streamproc.core.errors import EventError
from streamproc.core.events import parse_segment
from streamproc.core.events.traits import reserved_traits

SOURCE = "segment"


def test_case(case):
    if "expected_error" in case:
        with pytest.raises(EventError) as ei:
            parse_segment(case["raw"], **case["kwargs"])
        assert ei.value.reason == case["expected_error"], ei.value.message
        return
    ev = parse_segment(case["raw"], **case["kwargs"])
    expected = dict(case["expected"])
    if "reserved_traits" in expected:
        assert reserved_traits(ev.traits) == expected.pop("reserved_traits")
    check(ev, expected)
    assert ev.raw == json.loads(case["raw"])


def _identify(**extra):
    msg = {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"},
           "timestamp": "2024-01-15T10:30:00Z"}
    msg.update(extra)
    return msg


def test_oversize_over_32kb():
    msg = _identify(traits={"email": "a@example.com", "blob": "x" * 33_000})
    raw = json.dumps(msg).encode()
    assert len(raw) > 32 * 1024
    with pytest.raises(EventError) as ei:
        parse_segment(raw)
    assert ei.value.reason == "oversize"


def test_just_under_32kb_is_fine():
    msg = _identify(traits={"email": "a@example.com", "blob": ""})
    pad = 32 * 1024 - len(json.dumps(msg).encode())
    msg["traits"]["blob"] = "x" * pad
    raw = json.dumps(msg).encode()
    assert len(raw) == 32 * 1024
    assert parse_segment(raw).user_id == "u1"


def test_generated_message_id_is_deterministic_and_ignores_transport_times():
    a = _identify(sentAt="2024-01-15T10:31:00Z")
    b = {k: a[k] for k in reversed(list(a))}  # same message, other key order
    b["sentAt"] = "2024-01-15T10:32:00Z"  # a client retry re-stamps sentAt
    ida = parse_segment(json.dumps(a).encode()).message_id
    idb = parse_segment(json.dumps(b).encode()).message_id
    assert ida == idb and ida.startswith("sp-")
    other = parse_segment(json.dumps(_identify(userId="u2")).encode()).message_id
    assert other != ida


def test_explicit_message_id_is_kept():
    ev = parse_segment(json.dumps(_identify(messageId="ajs-123")).encode())
    assert ev.message_id == "ajs-123"


def test_bytes_that_are_not_utf8():
    with pytest.raises(EventError) as ei:
        parse_segment(b"\xff\xfe{\x00")
    assert ei.value.reason == "not_json"


def test_empty_and_none_record():
    for raw in (b"", b"   ", None):
        with pytest.raises(EventError) as ei:
            parse_segment(raw)
        assert ei.value.reason == "not_json"
