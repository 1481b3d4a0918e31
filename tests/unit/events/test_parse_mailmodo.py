"""Mailmodo activity parser: fixture cases plus event id stability."""

from __future__ import annotations

import json

import pytest

from event_cases import check
from streamproc.core.errors import EventError
from streamproc.core.events import MAILMODO_EVENTS, parse_mailmodo
from streamproc.core.events.mailmodo import SEGMENT_NAMES, canonical_event

SOURCE = "mailmodo"


def test_case(case):
    if "expected_error" in case:
        with pytest.raises(EventError) as ei:
            parse_mailmodo(case["raw"], **case["kwargs"])
        assert ei.value.reason == case["expected_error"], ei.value.message
        return
    check(parse_mailmodo(case["raw"], **case["kwargs"]), case["expected"])


def test_every_segment_name_maps_back_to_its_event():
    assert set(SEGMENT_NAMES) == set(MAILMODO_EVENTS)
    for event, name in SEGMENT_NAMES.items():
        assert canonical_event(name) == event
        assert canonical_event(event) == event


def test_hash_event_id_is_stable_across_key_order():
    body = {"event": "opened", "email": "a@example.com", "timestamp": 1705314600, "email_id": "e1"}
    same = dict(reversed(list(body.items())))
    a = parse_mailmodo(json.dumps(body).encode()).event_id
    b = parse_mailmodo(json.dumps(same).encode()).event_id
    assert a == b and a.startswith("mm-")
    other = parse_mailmodo(json.dumps({**body, "event": "clicked"}).encode()).event_id
    assert other != a
