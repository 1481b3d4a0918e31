"""The shared retry rule (classify_status) over the full status table, Retry-After parsing, and
the default per-record interpretation; plus the registry's uniform face."""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timezone

import httpx
import pytest

from streamproc.core.errors import AuthError, Permanent, Retryable, Throttled
from streamproc.core.records import INTEGRATION_NAMES
from streamproc.destinations.outcomes import classify_status, interpret, parse_retry_after
from streamproc.destinations.registry import DESTINATIONS, destination
from streamproc.destinations.request import HttpRequest

NOW = 1714564800.0
OK, PERMANENT, RETRYABLE, THROTTLED, AUTH = "ok", "permanent", "retryable", "throttled", "auth"
KINDS = {PERMANENT: Permanent, THROTTLED: Throttled, AUTH: AuthError}

STATUS_TABLE = [
    (200, OK), (201, OK), (202, OK), (204, OK), (304, OK),
    (301, PERMANENT), (400, PERMANENT), (401, AUTH), (403, AUTH), (404, PERMANENT),
    (408, RETRYABLE), (409, PERMANENT), (413, PERMANENT), (422, PERMANENT), (423, RETRYABLE),
    (429, THROTTLED), (500, RETRYABLE), (501, PERMANENT), (502, RETRYABLE), (503, RETRYABLE),
    (504, RETRYABLE),
]


@pytest.mark.parametrize("status, kind", STATUS_TABLE)
def test_status_table(status, kind):
    err = classify_status(status, b'{"message": "nope"}', {})
    if kind == OK:
        assert err is None
        return
    if kind == RETRYABLE:
        assert isinstance(err, Retryable) and not isinstance(err, Throttled)
    else:
        assert isinstance(err, KINDS[kind])
    assert err.status == status
    assert err.reason == f"http_{status}"
    assert '{"message": "nope"}' in err.body


def test_429_without_retry_after_is_throttled_with_no_delay():
    err = classify_status(429, b"", {})
    assert isinstance(err, Throttled) and err.retry_after is None


@pytest.mark.parametrize("value, seconds", [("120", 120.0), ("0", 0.0), ("1.5", 1.5),
                                            ("-3", 0.0), ("soon", None), ("", None)])
def test_429_retry_after_seconds(value, seconds):
    err = classify_status(429, b"", {"Retry-After": value}, now=NOW)
    assert isinstance(err, Throttled) and err.retry_after == seconds


def test_429_retry_after_http_date():
    when = datetime.fromtimestamp(NOW + 90, tz=timezone.utc)
    err = classify_status(429, b"", {"retry-after": format_datetime(when, usegmt=True)}, now=NOW)
    assert isinstance(err, Throttled) and err.retry_after == pytest.approx(90.0)
    past = format_datetime(datetime.fromtimestamp(NOW - 90, tz=timezone.utc), usegmt=True)
    assert parse_retry_after(past, now=NOW) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 -0000", now=NOW) == pytest.approx(90.0)


def test_retry_after_on_503_is_honoured_too():
    err = classify_status(503, b"", httpx.Headers({"Retry-After": "30"}))
    assert isinstance(err, Throttled) and err.status == 503 and err.retry_after == 30.0


def test_body_excerpt_is_kept_and_bounded():
    err = classify_status(400, b"x" * 5000 + b"\xff", {})
    assert err.body == "x" * 2000
    assert str(err).startswith("HTTP 400")


def test_default_interpret_gives_every_record_the_same_outcome():
    request = HttpRequest("POST", "/v1/batch", {}, ["a", "b"], "batch")
    assert [o.ok for o in interpret(request, 200, b"", {})] == [True, True]
    outcomes = interpret(request, 500, b"oops", {})
    assert [o.record_id for o in outcomes] == ["a", "b"]
    assert all(isinstance(o.error, Retryable) for o in outcomes)


def test_registry_has_a_uniform_face():
    assert set(DESTINATIONS) == set(INTEGRATION_NAMES)
    for slug, module in DESTINATIONS.items():
        assert module.NAME == slug and destination(slug) is module
        assert module.INTEGRATION == INTEGRATION_NAMES[slug]
        assert module.MAX_RECORDS_PER_REQUEST >= 1
        for name in ("auth", "build_requests", "interpret"):
            assert callable(getattr(module, name))
        requests, failures = module.build_requests([], None, now=NOW)
        assert requests == [] and failures == []
    with pytest.raises(KeyError, match="known"):
        destination("hubspot")
