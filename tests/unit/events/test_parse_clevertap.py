"""CleverTap trigger parser: fixture cases plus event id properties."""

from __future__ import annotations

import json

import pytest

from event_cases import check_batch
from streamproc.core.errors import EventError
from streamproc.core.events import parse_clevertap

SOURCE = "clevertap"


def test_case(case):
    if "expected_error" in case:
        with pytest.raises(EventError) as ei:
            parse_clevertap(case["raw"], **case["kwargs"])
        assert ei.value.reason == case["expected_error"], ei.value.message
        return
    triggers, errors = parse_clevertap(case["raw"], **case["kwargs"])
    check_batch(triggers, errors, case["expected"], "triggers", "profile")


def test_event_ids_are_distinct_per_profile_and_stable_on_retry():
    body = {"targetId": 1234, "key_values": {"campaign_id": "c1"},
            "profiles": [{"Email": "a@example.com"}, {"Email": "b@example.com"}]}
    raw = json.dumps(body).encode()
    first, _ = parse_clevertap(raw)
    again, _ = parse_clevertap(raw)  # CleverTap retries the same call
    assert [t.event_id for t in first] == [t.event_id for t in again]
    assert len({t.event_id for t in first}) == 2
    body["profiles"].append({"Email": "c@example.com"})  # a different call of the same campaign
    other, _ = parse_clevertap(json.dumps(body).encode())
    assert other[0].event_id != first[0].event_id
