"""Every raw record is accounted for: parse_input gives it an event or an error, never
neither (found by tests/integration/test_bad_input.py: a Mailjet record `[]` vanished)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streamproc.core.events.inputs import parse_input


@dataclass
class Rec:
    value: bytes
    key: bytes = b"k"
    topic: str = "t"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: tuple = ()


@pytest.mark.parametrize("source", ["segment", "mailmodo", "mailjet", "clevertap"])
@pytest.mark.parametrize("raw", [b"[]", b"{}", b"[{}]", b"", b"null", b"[[]]"])
def test_a_record_gives_an_event_or_a_dead_letter_reason(source, raw):
    events, errors = parse_input(source, Rec(raw))
    assert events or errors
    assert all(e.reason for e in errors)


def test_an_empty_mailjet_array_is_dead_lettered_as_empty():
    assert [e.reason for e in parse_input("mailjet", Rec(b"[]"))[1]] == ["empty"]
