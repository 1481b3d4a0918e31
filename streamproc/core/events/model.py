"""Typed, normalised input events. Parsers in this package build them from raw bytes;
routing reads them. Emails: `email` is as sent, `email_key` is trimmed and lowercased.

They are msgspec Structs (issue 18): the internal envelopes carry them under a `kind` tag, and
msgspec decodes an envelope straight into its Struct, where building a dataclass from an
orjson dict cost three times as much. The tags are the envelope kinds (routing/messages.py)."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field

# The envelope's kind field (routing/messages.py); gc=False: instances are plain data that never
# refer back to themselves, so the cyclic GC need not track them (tracked, the ones a batch
# keeps alive made its collections cost more than msgspec saved: bench/route_path.py).
_ENVELOPE = {"tag_field": "kind", "gc": False}

SEGMENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")


class SegmentEvent(Struct, tag="segment", **_ENVELOPE):
    type: str  # one of SEGMENT_TYPES
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: float  # unix seconds (timestamp, else originalTimestamp, else receivedAt/sentAt)
    traits: dict[str, Any]  # identify/group traits (as sent)
    context: dict[str, Any]  # as sent
    integrations: dict[str, Any]  # as sent ({} when absent)
    email: str | None  # traits.email, else context.traits.email (as sent), for identify/track
    email_key: str | None  # normalised email
    event: str | None = None  # track event name
    properties: dict[str, Any] = field(default_factory=dict)  # track/page/screen properties
    name: str | None = None  # page/screen name
    group_id: str | None = None
    previous_id: str | None = None  # alias
    raw: dict[str, Any] = field(default_factory=dict)  # the whole original message

    @property
    def context_traits(self) -> dict[str, Any]:
        t = self.context.get("traits")
        return t if isinstance(t, dict) else {}

    @property
    def personas(self) -> dict[str, Any] | None:
        p = self.context.get("personas")
        return p if isinstance(p, dict) else None


MAILMODO_EVENTS = ("sent", "opened", "clicked", "form_submitted", "spam", "bounced", "unsubscribed")


class MailmodoActivity(Struct, tag="mailmodo", **_ENVELOPE):
    event: str  # canonical: one of MAILMODO_EVENTS (Segment names are mapped to these)
    email: str
    email_key: str
    timestamp: float  # unix seconds
    fields: dict[str, Any]  # the optional contract fields present (email_id, campaign_name, ...)
    clevertap_id: str | None
    event_id: str  # stable id of this activity (explicit id field, else a hash of the body)
    raw: dict[str, Any]


MAILJET_EVENTS = ("sent", "open", "click", "bounce", "blocked", "spam", "unsub")


class MailjetEvent(Struct, tag="mailjet", **_ENVELOPE):
    event: str  # one of MAILJET_EVENTS
    email: str
    email_key: str
    time: float  # unix seconds
    message_id: str | None  # MessageID kept exact as a decimal string (may exceed 2^53)
    fields: dict[str, Any]  # the rest (mj_campaign_id, url, ip, error, ...), big ints as strings
    event_id: str  # stable id: MessageID + event + time, else a hash of the object
    raw: dict[str, Any]


class CleverTapTrigger(Struct, tag="clevertap", **_ENVELOPE):
    """One profile of a CleverTap webhook call: trigger Mailmodo campaign for this email."""

    email: str
    email_key: str
    campaign_id: str
    data: dict[str, Any]  # saved on the Mailmodo contact (profile properties, key_values)
    campaign_data: dict[str, Any]  # personalisation only
    clevertap_id: str | None
    event_id: str  # stable id of this profile within its call
    raw: dict[str, Any]
