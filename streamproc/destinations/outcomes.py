"""The one retry rule shared by every destination (HTTP status -> DeliveryError or None) and the
default per-record reading of a response. Every error made here carries a stable `.reason`."""

from __future__ import annotations

import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

import orjson

from streamproc.core.errors import AuthError, DeliveryError, Permanent, Retryable, Throttled
from streamproc.core.logs import clip
from streamproc.destinations.request import HttpRequest, RecordOutcome

BODY_EXCERPT_CHARS = 2000
RETRYABLE_4XX = (408, 423, 429)


def with_reason(error: DeliveryError, reason: str) -> DeliveryError:
    """`error` with a machine-readable `.reason` (dead-letter reason code) attached."""
    error.reason = reason  # type: ignore[attr-defined]
    return error


def rejected(reason: str, message: str, *, status: int | None = None, body: str = "") -> Permanent:
    """A Permanent error with a stable reason code, e.g. rejected("oversize", "...")."""
    err = Permanent(message, status=status, body=body)
    err.reason = reason  # type: ignore[attr-defined]
    return err


def body_excerpt(body: bytes | str | None) -> str:
    if not body:
        return ""
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    return text[:BODY_EXCERPT_CHARS]


def json_body(body: bytes | str | None) -> Any:
    """The response body parsed as JSON, or None when it is not JSON."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts and httpx.Headers alike."""
    if not headers:
        return None
    low = name.lower()
    for key, value in headers.items():
        if key.lower() == low:
            return value
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP-date (RFC 9110); None if absent
    or unreadable; never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP-dates are always UTC
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def classify_status(status: int, body: bytes | str | None = b"",
                    headers: Mapping[str, str] | None = None, *,
                    now: float | None = None) -> DeliveryError | None:
    """THE retry rule: 2xx and 304 ok (None); 408/423/429 and 5xx except 501 retryable (a
    Retry-After makes it Throttled); 401/403 AuthError; other 4xx, 501 and 3xx permanent."""
    if 200 <= status < 300 or status == 304:
        return None
    excerpt = body_excerpt(body)
    reason = f"http_{status}"
    message = f"HTTP {status}" + (f": {clip(excerpt, 200)}" if excerpt else "")
    retryable = status in RETRYABLE_4XX or (500 <= status < 600 and status != 501)
    if retryable:
        retry_after = parse_retry_after(header(headers, "Retry-After"), now=now)
        if status == 429 or retry_after is not None:
            return with_reason(Throttled(message, status=status, body=excerpt,
                                         retry_after=retry_after), reason)
        return with_reason(Retryable(message, status=status, body=excerpt), reason)
    if status in (401, 403):
        return with_reason(AuthError(message, status=status, body=excerpt), reason)
    if 300 <= status < 400:
        message = f"HTTP {status}: unexpected redirect (check the destination base URL)"
    return rejected(reason, message, status=status, body=excerpt)


def same_outcome(request: HttpRequest, error: DeliveryError | None) -> list[RecordOutcome]:
    return [RecordOutcome(record_id, error) for record_id in request.record_ids]


def interpret(request: HttpRequest, status: int, body: bytes | str | None,
              headers: Mapping[str, str] | None = None) -> list[RecordOutcome]:
    """Default reading of a response: the status decides, the same outcome for every record."""
    return same_outcome(request, classify_status(status, body, headers))
