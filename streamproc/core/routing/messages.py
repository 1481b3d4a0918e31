"""Envelopes on the internal repartition topics (by-user, by-contact): ContactUpdate, MergeUser,
SweepPending, SweepContact and the parsed input events, as orjson objects with a `kind` field.
`key_for` gives the key each one is repartitioned by. msgspec Structs tagged by `kind`
(encoded and decoded by msgspec in one step: issue 18)."""

from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Struct, field

from streamproc.core.events.model import (CleverTapTrigger, MailjetEvent, MailmodoActivity,
                                          SegmentEvent)


class ContactUpdate(Struct, tag="contact_update", tag_field="kind", gc=False):
    """users -> contacts: a Segment identify (or audience change) touched this contact."""

    email: str  # as sent
    email_key: str  # normalised: the by-contact key
    user_id: str | None
    anonymous_id: str | None
    traits: dict[str, Any]  # as sent to Mailmodo/Mailjet (reserved keys canonical)
    timestamp: float  # event time of the Segment message
    identified: bool = True  # identified through Segment
    source_id: str = ""  # messageId of the Segment message
    trait_ts: dict[str, float] = field(default_factory=dict)  # per-key time (else timestamp)


class MergeUser(Struct, tag="merge_user", tag_field="kind", gc=False):
    """users -> users: alias. `state` (KnownUser.to_dict of previous_id) merges into user_id."""

    user_id: str  # the by-user key
    previous_id: str
    state: dict[str, Any]
    timestamp: float
    source_id: str = ""  # messageId of the alias


class SweepPending(Struct, tag="sweep_pending", tag_field="kind", gc=False):
    """timer -> users: decide this user's held tracks that are past the hold time."""

    user_id: str  # the by-user key


class SweepContact(Struct, tag="sweep_contact", tag_field="kind", gc=False):
    """timer -> contacts: decide this contact's held inputs that are past the hold time."""

    email_key: str  # the by-contact key


KINDS: dict[str, type] = {
    "segment": SegmentEvent,
    "mailmodo": MailmodoActivity,
    "mailjet": MailjetEvent,
    "clevertap": CleverTapTrigger,
    "contact_update": ContactUpdate,
    "merge_user": MergeUser,
    "sweep_pending": SweepPending,
    "sweep_contact": SweepContact,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}

Envelope = (SegmentEvent | MailmodoActivity | MailjetEvent | CleverTapTrigger | ContactUpdate
            | MergeUser | SweepPending | SweepContact)


def _slim_raw(obj: Any) -> dict[str, Any]:
    """The original message is not carried (the ingest DLQ keeps bytes; big ints need not
    survive twice); only its `integrations` object, which routing honours, is kept.
    SegmentEvent carries `integrations` as a field already."""
    if isinstance(obj, SegmentEvent):
        return {}
    raw = obj.raw
    integrations = raw.get("integrations") if isinstance(raw, dict) else None
    return {"integrations": integrations} if isinstance(integrations, dict) else {}


# What of a Segment message's `context` an envelope carries: routing reads none of the rest
# (library, page, userAgent, ip, ...: about 40% of a typical envelope's bytes).
CONTEXT_KEPT = ("traits", "personas")


def _slim_context(ev: SegmentEvent) -> dict[str, Any]:
    context = ev.context
    if "traits" not in context and "personas" not in context:  # the common case, cheaply
        return {}
    return {k: context[k] for k in CONTEXT_KEPT if k in context}


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Union[tuple(KINDS.values())]).decode  # type: ignore[misc]
_SLIMMED = (SegmentEvent, MailmodoActivity, MailjetEvent, CleverTapTrigger)


def encode(obj: Envelope) -> bytes:
    """One envelope: {"kind": ..., <the object's fields>}, the input events' `raw` slimmed
    (_slim_raw) and a Segment message's `context` cut to CONTEXT_KEPT, for the encoding only
    (the object is left whole)."""
    if type(obj) not in _KIND_OF:
        raise TypeError(f"no envelope kind for {type(obj).__name__}")
    if not isinstance(obj, _SLIMMED):
        return _encode(obj)
    raw, segment = obj.raw, isinstance(obj, SegmentEvent)
    context = obj.context if segment else None  # type: ignore[union-attr]
    try:  # synchronous: nothing else sees the object meanwhile
        obj.raw = _slim_raw(obj)
        if segment:
            obj.context = _slim_context(obj)  # type: ignore[union-attr, arg-type]
        return _encode(obj)
    finally:
        obj.raw = raw
        if segment:
            obj.context = context  # type: ignore[union-attr]


def decode(raw: bytes) -> Envelope:
    """The object an envelope carries. Raises ValueError for bad JSON, an unknown kind or a
    bad body (a field of the wrong type, a required field missing); unknown fields are
    ignored (an envelope of a newer version)."""
    try:
        return _decode(raw)  # type: ignore[no-any-return]
    except msgspec.ValidationError as e:
        raise ValueError(f"bad envelope: {e}") from None
    except msgspec.DecodeError as e:
        raise ValueError(f"envelope is not JSON: {e}") from None


def key_for(obj: Envelope) -> str | None:
    """The repartition key: by-user (Segment: userId else anonymousId, alias: previousId;
    MergeUser: the new userId; SweepPending: its user) or by-contact (normalised email)."""
    if isinstance(obj, SegmentEvent):
        if obj.type == "alias":
            return obj.previous_id
        return obj.user_id or obj.anonymous_id
    if isinstance(obj, (MergeUser, SweepPending)):
        return obj.user_id
    return obj.email_key
