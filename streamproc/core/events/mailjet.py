"""Mailjet events raw topic: one Event API payload (an object or an array of events) from
bytes to MailjetEvents plus per-item EventErrors. MessageID stays exact (string). No I/O."""

from __future__ import annotations

from typing import Any

from streamproc.core.errors import EventError
from streamproc.core.events.common import (as_id, format_time, json_type, loads_json,
                                           normalise_email, required_email, stable_hash,
                                           stringify_big_ints, time_or_record_ts)
from streamproc.core.events.model import MAILJET_EVENTS, MailjetEvent

MAX_BYTES = 1_048_576
# Identifier fields always given as strings in `fields` (numbers become exact decimals).
STRING_ID_FIELDS = ("CustomID", "mj_message_id", "Message_GUID")
_MAIN = ("event", "email", "time", "MessageID")


def parse_mailjet(raw: bytes, *, max_bytes: int = MAX_BYTES,
                  record_ts: float | None = None) -> tuple[list[MailjetEvent], list[EventError]]:
    """Parse a payload. Whole-body problems raise EventError (oversize, not_json, not_object);
    a bad item becomes an EventError whose message starts with 'item <index>:' while the
    good items are returned. An empty array gives ([], []). `record_ts` is used only for an
    item without `time`."""
    body = loads_json(raw, max_bytes, exact_ints=True)
    if isinstance(body, dict):
        items, single = [body], True
    elif isinstance(body, list):
        items, single = body, False
    else:
        raise EventError("not_object", f"expected an event object or an array, got {json_type(body)}")
    events: list[MailjetEvent] = []
    errors: list[EventError] = []
    for i, item in enumerate(items):
        try:
            events.append(_parse_item(item, record_ts))
        except EventError as e:
            if single:  # one object: the whole record is that event
                raise
            errors.append(EventError(e.reason, f"item {i}: {e.message}"))
    return events, errors


def _parse_item(item: Any, record_ts: float | None) -> MailjetEvent:
    if not isinstance(item, dict):
        raise EventError("not_object", f"event must be an object, got {json_type(item)}")
    name = item.get("event")
    if name is None or name == "":
        raise EventError("missing_event", "event has no 'event' field")
    if not isinstance(name, str):
        raise EventError("wrong_type", f"event must be a string, got {json_type(name)}")
    event = name.strip().lower()
    if event not in MAILJET_EVENTS:
        raise EventError("unknown_event", f"unknown Mailjet event {name[:40]!r}")

    email = required_email(item.get("email"), f"{event} event has no email")
    time = time_or_record_ts(item.get("time"), "time", record_ts, f"{event} event has no time")

    message_id = _message_id(item.get("MessageID"))
    fields = {k: stringify_big_ints(v) for k, v in item.items() if k not in _MAIN}
    for key in STRING_ID_FIELDS:
        if key in fields and fields[key] is not None and not isinstance(fields[key], str):
            fields[key] = as_id(fields[key], key)
    safe_raw = stringify_big_ints(item)
    if message_id is not None:
        event_id = f"{message_id}:{event}:{format_time(time)}"
    else:
        event_id = stable_hash(safe_raw, "mj-")
    return MailjetEvent(
        event=event,
        email=email,
        email_key=normalise_email(email),
        time=time,
        message_id=message_id,
        fields=fields,
        event_id=event_id,
        raw=safe_raw,
    )


def _message_id(v: Any) -> str | None:
    """MessageID as an exact decimal string. Integers (any size) are exact; a numeric string
    is kept as sent (trimmed); a float is accepted only when integral and <= 2^53, else it
    already lost digits upstream: `lossy_message_id`. 0 or blank counts as absent."""
    if isinstance(v, str):
        v = v.strip()
    mid = as_id(v, "MessageID", lossy_reason="lossy_message_id")
    return None if mid in (None, "0") else mid
