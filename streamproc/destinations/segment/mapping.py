"""Segment sink records (full Segment messages) -> POST /v1/batch requests within Segment's limits:
32 KB per message, 500 KB and 2,500 messages per request. Pure: no auth, no I/O."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import orjson

from streamproc.config.settings import SegmentSettings
from streamproc.core.errors import Permanent
from streamproc.core.records import OP_TRACK, SinkRecord
from streamproc.destinations.outcomes import rejected
from streamproc.destinations.request import HttpRequest

MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_MESSAGES_PER_REQUEST = 2500
SUPPORTED_OPS = {OP_TRACK: "track"}


def iso_utc(ts: float) -> str:
    """2024-05-01T12:00:00.000Z"""
    return (datetime.fromtimestamp(ts, tz=timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def batch_message(record: SinkRecord) -> dict[str, Any]:
    """The Segment message of a record, as sent: messageId kept (the delivery id when absent, so
    Segment dedupes resends), `type` from the op when absent. Raises Permanent if unusable."""
    message = record.payload.get("message")
    if not isinstance(message, dict):
        raise rejected("invalid_message", f"record {record.id} has no Segment message")
    if not (message.get("userId") or message.get("anonymousId")):
        raise rejected("missing_user_id", f"record {record.id}: message has no userId or anonymousId")
    if message.get("type", SUPPORTED_OPS[record.op]) == "track" and not message.get("event"):
        raise rejected("missing_event", f"record {record.id}: track message has no event name")
    if "type" in message and message.get("messageId"):
        return message
    out = dict(message)
    out.setdefault("type", SUPPORTED_OPS[record.op])
    if not out.get("messageId"):
        out["messageId"] = record.id
    return out


def encoded_message(record: SinkRecord) -> tuple[dict[str, Any], int]:
    """(message, its compact JSON size); Permanent "oversize" above 32 KB."""
    message = batch_message(record)
    try:
        size = len(orjson.dumps(message))
    except TypeError as e:
        raise rejected("invalid_message", f"record {record.id}: message is not JSON: {e}") from None
    if size > MAX_MESSAGE_BYTES:
        raise rejected("oversize", f"record {record.id}: message is {size} bytes, Segment accepts "
                                   f"at most {MAX_MESSAGE_BYTES}")
    return message, size


def batch_request(messages: list[dict[str, Any]], record_ids: list[str],
                  sent_at: str) -> HttpRequest:
    """POST /v1/batch {"batch": [...], "sentAt": ...}."""
    return HttpRequest("POST", "/v1/batch", {"batch": messages, "sentAt": sent_at},
                       list(record_ids), "batch")


def _envelope_bytes(sent_at: str) -> int:
    """Size of the body without its messages and the commas between them."""
    return len(orjson.dumps({"batch": [], "sentAt": sent_at}))


def build_requests(records: list[SinkRecord], settings: SegmentSettings, *,
                   now: float | None = None
                   ) -> tuple[list[HttpRequest], list[tuple[SinkRecord, Permanent]]]:
    """Records (in order) -> /v1/batch requests in the same order, each <= 2,500 messages and
    <= 500 KB of compact JSON; sentAt is `now` (default: the clock) in ISO-8601 UTC."""
    del settings  # nothing in the body depends on settings (write key goes in auth headers)
    sent_at = iso_utc(time.time() if now is None else now)
    envelope = _envelope_bytes(sent_at)
    requests: list[HttpRequest] = []
    failures: list[tuple[SinkRecord, Permanent]] = []
    messages: list[dict[str, Any]] = []
    ids: list[str] = []
    size = envelope
    for record in records:
        try:
            if record.op not in SUPPORTED_OPS:
                raise rejected("unsupported_op", f"segment has no operation {record.op!r}")
            message, message_bytes = encoded_message(record)
        except Permanent as err:
            failures.append((record, err))
            continue
        added = message_bytes + (1 if messages else 0)  # the comma before it
        if messages and (len(messages) >= MAX_MESSAGES_PER_REQUEST
                         or size + added > MAX_REQUEST_BYTES):
            requests.append(batch_request(messages, ids, sent_at))
            messages, ids, size = [], [], envelope
            added = message_bytes
        messages.append(message)
        ids.append(record.id)
        size += added
    if messages:
        requests.append(batch_request(messages, ids, sent_at))
    return requests, failures
