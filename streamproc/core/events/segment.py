"""Segment raw topic: one Segment-spec message (identify, track, page, screen, group, alias)
from bytes to a SegmentEvent, or EventError with a stable reason. No I/O."""

from __future__ import annotations

from typing import Any

from streamproc.core.errors import EventError
from streamproc.core.events.common import (as_id, get_object, is_email, json_type, loads_object,
                                           normalise_email, parse_timestamp, stable_hash)
from streamproc.core.events.model import SEGMENT_TYPES, SegmentEvent
from streamproc.core.events.traits import reserved_trait

MAX_BYTES = 32 * 1024  # Segment's per-message limit
TIMESTAMP_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
# Transport fields left out of the generated messageId: a client retry re-stamps them.
_UNHASHED = ("sentAt", "receivedAt")


def parse_segment(raw: bytes, *, max_bytes: int = MAX_BYTES,
                  record_ts: float | None = None) -> SegmentEvent:
    """Parse one Segment message. `record_ts` (the Kafka record time, s or ms) is the event
    time only when the message has none of timestamp/originalTimestamp/receivedAt/sentAt."""
    msg = loads_object(raw, max_bytes)
    mtype = _message_type(msg)
    context = get_object(msg, "context")
    get_object(context, "traits", "context.traits")  # validated; read via the event property
    integrations = get_object(msg, "integrations")
    traits = get_object(msg, "traits")
    properties = get_object(msg, "properties")

    user_id = as_id(msg.get("userId"), "userId")
    anonymous_id = as_id(msg.get("anonymousId"), "anonymousId")
    previous_id = as_id(msg.get("previousId"), "previousId")
    if mtype == "alias":
        if previous_id is None or user_id is None:
            raise EventError("missing_id", "alias needs both previousId and userId")
    elif user_id is None and anonymous_id is None:
        raise EventError("missing_id", f"{mtype} has neither userId nor anonymousId")

    event_name = None
    if mtype == "track":
        event_name = msg.get("event")
        if event_name is not None and not isinstance(event_name, str):
            raise EventError("wrong_type", f"event must be a string, got {json_type(event_name)}")
        if not event_name or not event_name.strip():
            raise EventError("missing_event", "track has no event name")

    email = _email(mtype, traits, context)
    return SegmentEvent(
        type=mtype,
        message_id=as_id(msg.get("messageId"), "messageId") or _generated_id(msg),
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=_timestamp(msg, record_ts),
        traits=traits,
        context=context,
        integrations=integrations,
        email=email,
        email_key=normalise_email(email) if email else None,
        event=event_name,
        properties=properties,
        name=_page_name(msg, mtype, properties),
        group_id=as_id(msg.get("groupId"), "groupId"),
        previous_id=previous_id,
        raw=msg,
    )


def _message_type(msg: dict[str, Any]) -> str:
    t = msg.get("type")
    if not isinstance(t, str) or not t.strip():
        raise EventError("bad_type", f"type must be a non-empty string, got {json_type(t)}")
    mtype = t.strip().lower()
    if mtype not in SEGMENT_TYPES:
        raise EventError("unsupported_type", f"unsupported message type {t[:40]!r}")
    return mtype


def _timestamp(msg: dict[str, Any], record_ts: float | None) -> float:
    for key in TIMESTAMP_FIELDS:
        v = msg.get(key)
        if v is None or v == "":
            continue
        return parse_timestamp(v, key)  # present but unparseable: bad_timestamp, no fallback
    if record_ts is not None:
        return parse_timestamp(record_ts, "record timestamp")
    raise EventError("missing_timestamp", "no timestamp, originalTimestamp, receivedAt or sentAt")


def _email(mtype: str, traits: dict[str, Any], context: dict[str, Any]) -> str | None:
    """identify: traits.email, else context.traits.email; track: context.traits.email.
    The first candidate that is a plausible email wins; none -> None."""
    if mtype not in ("identify", "track"):
        return None
    ctx_traits = context.get("traits") or {}
    candidates = [reserved_trait(ctx_traits, "email") if isinstance(ctx_traits, dict) else None]
    if mtype == "identify":
        candidates.insert(0, reserved_trait(traits, "email"))
    for c in candidates:
        if is_email(c):
            return c
    return None


def _page_name(msg: dict[str, Any], mtype: str, properties: dict[str, Any]) -> str | None:
    if mtype not in ("page", "screen"):
        return None
    name = msg.get("name")
    if name is None:  # analytics.js also puts the page name in properties.name
        name = properties.get("name") if isinstance(properties.get("name"), str) else None
    if name is None or isinstance(name, str):
        return name
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        return str(name)
    raise EventError("wrong_type", f"name must be a string, got {json_type(name)}")


def _generated_id(msg: dict[str, Any]) -> str:
    """messageId for a message that has none: a hash of the canonical message (sorted keys,
    without sentAt/receivedAt), so replays and client retries get the same id."""
    return stable_hash({k: v for k, v in msg.items() if k not in _UNHASHED}, "sp-")
