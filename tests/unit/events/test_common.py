"""Parsing primitives: emails, timestamps, JSON loading, exact ids."""

from __future__ import annotations

import pytest

from streamproc.core.errors import EventError
from streamproc.core.events.common import (
    as_id,
    is_email,
    loads_json,
    loads_object,
    normalise_email,
    parse_timestamp,
    stringify_big_ints,
)
from streamproc.core.events.traits import reserved_traits, snake_case


def test_normalise_email():
    assert normalise_email("  Jane.Doe@Example.COM \n") == "jane.doe@example.com"


@pytest.mark.parametrize("s", ["a@example.com", "first.last+tag@sub.example.co.uk", " A@B.IO "])
def test_is_email_true(s):
    assert is_email(s)


@pytest.mark.parametrize("s", ["", "n/a", "a@b", "@example.com", "a@@example.com", "a b@example.com",
                               "a@example..com", "a@.example.com", None, 42, ["a@example.com"]])
def test_is_email_false(s):
    assert not is_email(s)


@pytest.mark.parametrize("v,want", [
    (1705314600, 1705314600.0),                     # seconds
    (1705314600.5, 1705314600.5),
    (1705314600123, 1705314600.123),                # milliseconds
    (1705314600123456, 1705314600.123456),          # microseconds
    ("1705314600", 1705314600.0),
    ("1705314600123", 1705314600.123),
    ("2024-01-15T10:30:00Z", 1705314600.0),
    ("2024-01-15T10:30:00.250Z", 1705314600.25),
    ("2024-01-15T12:30:00+02:00", 1705314600.0),
    ("2024-01-15T10:30:00.123456789Z", 1705314600.123456),
    ("2024-01-15T10:30:00", 1705314600.0),           # naive = UTC
    ("2024-01-15 10:30:00z", 1705314600.0),
    ("2024-01-15", 1705276800.0),
])
def test_parse_timestamp(v, want):
    assert parse_timestamp(v) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("v", [None, True, "", "yesterday", "2024-13-01T00:00:00Z", -5, float("nan"),
                               float("inf"), 10**30, {"s": 1}, [1]])
def test_parse_timestamp_rejects(v):
    with pytest.raises(EventError) as ei:
        parse_timestamp(v, "ts")
    assert ei.value.reason == "bad_timestamp" and "ts" in ei.value.message


def test_loads_object_reasons():
    assert loads_object(b'{"a": 1}') == {"a": 1}
    assert loads_object(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # UTF-8 BOM tolerated
    cases = [(b"nope", None, "not_json"), (b"[1]", None, "not_object"), (b'"s"', None, "not_object"),
             (b'{"a": NaN}', None, "not_json"), (b"{}" + b" " * 10, 5, "oversize")]
    for raw, limit, reason in cases:
        with pytest.raises(EventError) as ei:
            loads_object(raw, limit)
        assert ei.value.reason == reason


def test_loads_json_exact_ints():
    raw = b'{"id": 123456789012345678901234567, "f": 1.5}'
    assert isinstance(loads_json(raw)["id"], float)  # orjson alone: lossy above 2^64
    assert loads_json(raw, exact_ints=True) == {"id": 123456789012345678901234567, "f": 1.5}


def test_stringify_big_ints():
    v = {"a": 2**53 - 1, "b": 2**53, "c": [-(2**60), True, 1.5], "d": {"e": 10**30}}
    assert stringify_big_ints(v) == {"a": 2**53 - 1, "b": str(2**53),
                                     "c": [str(-(2**60)), True, 1.5], "d": {"e": str(10**30)}}


def test_as_id():
    assert as_id(12345, "x") == "12345"
    assert as_id(12345.0, "x") == "12345"
    assert as_id("  ", "x") is None and as_id(None, "x") is None
    assert as_id(" u1 ", "x") == " u1 "  # ids are kept as sent
    for bad, reason in ((True, "wrong_type"), ({}, "wrong_type"), (1.5, "wrong_type"),
                        (1.2e19, "lossy")):
        with pytest.raises(EventError) as ei:
            as_id(bad, "x", lossy_reason="lossy")
        assert ei.value.reason == reason


@pytest.mark.parametrize("name,want", [
    ("High Value Users", "high_value_users"), ("highValueUsers", "high_value_users"),
    ("high_value_users", "high_value_users"), ("HTTPServer Users", "http_server_users"),
    ("Cart-Abandoners (30d)", "cart_abandoners_30d"), ("top10Users", "top10_users"),
])
def test_snake_case(name, want):
    assert snake_case(name) == want


def test_reserved_traits_spec_spelling_wins_and_others_untouched():
    traits = {"first_name": "Snake", "firstName": "Camel", "Last Name": "Doe", "plan": "pro",
              "favorite_color": "blue", "address": {"postal_code": "10115", "city": "Berlin"}}
    assert reserved_traits(traits) == {"firstName": "Camel", "lastName": "Doe", "plan": "pro",
                                       "favorite_color": "blue",
                                       "address": {"postalCode": "10115", "city": "Berlin"}}
    assert reserved_traits("nope") == {}


@pytest.mark.parametrize("traits", [
    {"email": "a@x.io"}, {"Email": "b@x.io"}, {"e-mail": "c@x.io", "EMAIL": "d@x.io"},
    {"E mail": "e@x.io", "email": "f@x.io"}, {"name": "n"}, {}, {"email": None},
])
def test_reserved_trait_is_reserved_traits_get(traits: dict) -> None:
    from streamproc.core.events.traits import reserved_trait, reserved_traits

    assert reserved_trait(traits, "email") == reserved_traits(traits).get("email")
