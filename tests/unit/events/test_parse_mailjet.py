"""Mailjet Event API parser: fixture cases plus MessageID exactness."""

from __future__ import annotations

import pytest

from event_cases import check_batch
from streamproc.core.errors import EventError
from streamproc.core.events import parse_mailjet

SOURCE = "mailjet"


def test_case(case):
    if "expected_error" in case:
        with pytest.raises(EventError) as ei:
            parse_mailjet(case["raw"], **case["kwargs"])
        assert ei.value.reason == case["expected_error"], ei.value.message
        return
    events, errors = parse_mailjet(case["raw"], **case["kwargs"])
    check_batch(events, errors, case["expected"], "events", "item")


@pytest.mark.parametrize("digits", ["9007199254740993", "1152921509452735123",
                                    "18446744073709551615", "123456789012345678901234567"])
def test_message_id_exact_at_any_size(digits):
    raw = ('{"event":"open","time":1705314600,"email":"a@example.com","MessageID":%s}' % digits).encode()
    [ev], errors = parse_mailjet(raw)
    assert errors == []
    assert ev.message_id == digits
    assert ev.event_id == f"{digits}:open:1705314600"
    assert ev.raw["MessageID"] == digits  # stringified, so orjson can serialise it


def test_oversize_body():
    raw = b"[" + b",".join([b'{"event":"open","email":"a@example.com","time":1}'] * 30000) + b"]"
    with pytest.raises(EventError) as ei:
        parse_mailjet(raw)
    assert ei.value.reason == "oversize"
