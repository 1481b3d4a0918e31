"""The contacts stage (by-contact topic, contacts table): ContactUpdate, Mailmodo activity,
Mailjet events and CleverTap triggers -> Segment tracks, CleverTap events, Mailmodo campaign
triggers and drops (routes 8-11). An input is never sent back to the destination it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from streamproc.core.events.model import CleverTapTrigger, MailjetEvent, MailmodoActivity
from streamproc.core.records import (
    CLEVERTAP, INTEGRATION_NAMES, MAILJET, MAILMODO, OP_EVENT, OP_TRACK, OP_TRIGGER_CAMPAIGN,
    SEGMENT, SinkRecord, delivery_id,
)
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.drops import (
    BLOCKED, EXPIRED, HELD, MISSING_TEMPLATE_NAME, NO_CLEVERTAP_ID, NOT_IDENTIFIED, OVERFLOW,
    RELEASED, SOURCE_CLEVERTAP, SOURCE_MAILJET, SOURCE_MAILMODO, UNSUPPORTED_EVENT, Drop, Hold,
)
from streamproc.core.routing.holds import (
    HoldCounts, already_held, expired, held_entry, held_event, hold_event,
)
from streamproc.core.routing.integrations import gate
from streamproc.core.routing.messages import ContactUpdate, SweepContact
from streamproc.core.state.model import (
    Contact, add_user_id, hold, mark_identified, merge_traits, set_clevertap_id, touch,
)

MAILMODO_TO_SEGMENT = {
    "sent": "Email Sent", "opened": "Email Opened", "clicked": "Link Clicked",
    "form_submitted": "Email Form Submitted", "spam": "Email Marked as Spam",
    "bounced": "Email Bounced", "unsubscribed": "Email Unsubscribed",
}
MAILMODO_TO_CLEVERTAP = {  # no CleverTap event for `sent`
    "opened": "MM Email Opened", "clicked": "MM Email Link Clicked",
    "form_submitted": "MM Email Form Submitted", "bounced": "MM Email Bounced",
    "unsubscribed": "MM Email Unsubscribed", "spam": "MM Email Marked as Spam",
}
MAILJET_TO_SEGMENT = {
    "sent": "Email Delivered", "open": "Email Opened", "click": "Email Link Clicked",
    "bounce": "Email Bounced", "spam": "Email Marked as Spam", "unsub": "Email Unsubscribed",
    "blocked": "Email Blocked",  # only with send_blocked
}
# Activity fields that are not CleverTap event data (the ID is the record's objectId; the
# responses go in the template-named form event).
_NOT_EVENT_DATA = ("clevertap_id", "form_responses")

ContactInput = ContactUpdate | MailmodoActivity | MailjetEvent | CleverTapTrigger | SweepContact


@dataclass(slots=True)
class ContactResult(HoldCounts):
    contact: Contact | None  # state for the by-contact key after the event
    changed: bool = False  # write `contact` back to the contacts table
    sink_records: list[SinkRecord] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)  # inputs waiting for this contact's state


def route_contact_event(msg: ContactInput, contact: Contact | None, cfg: RoutingConfig,
                        source: Mapping[str, Any] | None = None, *,
                        now: float | None = None) -> ContactResult:
    """Route one by-contact message given the stored contact of its key (`source`: the
    input's {topic, partition, offset}; `now`: wall clock, used as created_at and as the seen
    time of a CleverTap trigger)."""
    if isinstance(msg, SweepContact):
        out = ContactResult(contact)
        if contact is not None and contact.pending:
            out.changed = True
            _release(out, contact, cfg, now or 0.0)
        return out
    contact = contact or Contact(email=msg.email)
    out = ContactResult(contact, changed=True)
    before = (contact.identified, contact.clevertap_id)
    if isinstance(msg, ContactUpdate):
        _apply_update(msg, contact)
    elif isinstance(msg, MailmodoActivity):
        touch(contact, msg.timestamp)
        set_clevertap_id(contact, msg.clevertap_id)
    elif isinstance(msg, MailjetEvent):
        touch(contact, msg.time)
    elif isinstance(msg, CleverTapTrigger):
        if now is not None:
            touch(contact, now)
        set_clevertap_id(contact, msg.clevertap_id)
    else:
        raise TypeError(f"not a by-contact message: {type(msg).__name__}")
    if contact.pending and ((contact.identified, contact.clevertap_id) != before
                            or expired(contact.pending[0], cfg, now or 0.0)):
        _release(out, contact, cfg, now or 0.0)  # held before this input: decided first
    if isinstance(msg, MailmodoActivity):
        waits = [_activity_to_segment(msg, contact, out, cfg, now, source),
                 _activity_to_clevertap(msg, contact, out, cfg, now, source)]
        _hold(out, contact, msg, [w for w in waits if w], cfg, now, source)
    elif isinstance(msg, MailjetEvent):
        _hold(out, contact, msg, [w for w in [_mailjet_to_segment(
            msg, contact, out, cfg, now, source)] if w], cfg, now, source)
    elif isinstance(msg, CleverTapTrigger):
        _trigger_to_mailmodo(msg, out, cfg, now, source)
    return out


# ------------------------------------------------------------------ holds (routing/holds.py)


def _hold(out: ContactResult, contact: Contact, msg: MailmodoActivity | MailjetEvent,
          waits: list[str], cfg: RoutingConfig, now: float | None,
          source: Mapping[str, Any] | None) -> None:
    """Park the parts of `msg` that wait for this contact's state (`waits`: their reasons)."""
    if not waits or already_held(contact.pending, msg.event_id):
        return
    kind = SOURCE_MAILMODO if isinstance(msg, MailmodoActivity) else SOURCE_MAILJET
    entry = {**held_entry(now or 0.0, kind, msg, msg.event_id, source), "waits": waits}
    out.holds += [hold_event(kind, reason, HELD) for reason in waits]
    for old in hold(contact, entry, cfg.max_pending):
        _decide(out, old, old["waits"], OVERFLOW, Contact(email=contact.email), cfg, now)


def _ready(reason: str, contact: Contact) -> bool:
    return contact.clevertap_id is not None if reason == NO_CLEVERTAP_ID else contact.identified


def _release(out: ContactResult, contact: Contact, cfg: RoutingConfig, now: float) -> None:
    """Held inputs, in the order they came: a part whose state is there is decided as if it
    came now, whatever its age (a catch-up after a gap longer than the hold time brings the
    state right behind it); a part still waiting is decided as without that state once past
    the hold time; the rest wait on."""
    held, contact.pending = contact.pending, []
    for entry in held:
        ready = [r for r in entry["waits"] if _ready(r, contact)]
        if ready:
            _decide(out, entry, ready, RELEASED, contact, cfg, now)
        waits = [r for r in entry["waits"] if r not in ready]
        if waits and expired(entry, cfg, now):
            _decide(out, entry, waits, EXPIRED, Contact(email=contact.email), cfg, now)
        elif waits:
            contact.pending.append({**entry, "waits": waits})


def _decide(out: ContactResult, entry: dict[str, Any], waits: list[str], outcome: str,
            contact: Contact, cfg: RoutingConfig, now: float | None) -> None:
    """Decide the parts `waits` of a held entry against `contact` (a blank one: as without the
    state), holding nothing again."""
    msg = held_event(entry)
    source = entry.get("source") or None
    for reason in waits:
        out.holds.append(hold_event(entry["kind"], reason, outcome))
        part = _PARTS[(entry["kind"], reason)]
        part(msg, contact, out, cfg, now, source, final=True)


def _apply_update(msg: ContactUpdate, contact: Contact) -> None:
    """A Segment identify reached this contact: never routed anywhere (loop guard), only state."""
    contact.email = msg.email
    add_user_id(contact, msg.user_id, msg.anonymous_id)
    for key, value in msg.traits.items():
        merge_traits(contact.traits, contact.trait_ts, {key: value},
                     msg.trait_ts.get(key, msg.timestamp))
    if msg.identified:
        mark_identified(contact)
    touch(contact, msg.timestamp)


def _integrations(msg: Any) -> dict[str, Any] | None:
    raw = getattr(msg, "raw", None)
    value = raw.get("integrations") if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else None


def iso_time(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds: 2024-05-01T10:00:00.000Z."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segment_track(source_id: str, origin: str, event: str, properties: dict[str, Any],
                   email: str, email_key: str, ts: float, user_id: str | None,
                   anonymous_id: str | None, cfg: RoutingConfig, now: float | None,
                   source: Mapping[str, Any] | None) -> SinkRecord:
    """A Segment track for an event from `origin`; `integrations` turns `origin` off so the
    track never loops back to it through Segment."""
    rid = delivery_id(source_id, SEGMENT, OP_TRACK)
    message: dict[str, Any] = {"type": "track", "event": event, "properties": properties}
    if user_id:
        message["userId"] = user_id
    else:
        message["anonymousId"] = anonymous_id or email
    message.update({
        "context": {"traits": {"email": email}}, "timestamp": iso_time(ts), "messageId": rid,
        "integrations": {INTEGRATION_NAMES[origin]: False},
    })
    return cfg.record(SEGMENT, OP_TRACK, email_key, source_id, {"message": message},
                      source=source, now=now, rid=rid)


_GO = ""  # _route_gate: the input goes on to the destination


def _route_gate(out: ContactResult, cfg: RoutingConfig, source: str, destination: str,
            integrations: Mapping[str, Any] | None, final: bool,
            *checks: tuple[bool, str, bool]) -> str | None:
    """The gate (topics.yaml switch, `integrations`), then each (applies, reason, may_wait) in
    order: _GO when none applies; the reason when a may_wait one applies and the input may
    wait (not final, holds on); else None, the drop appended to out.drops."""
    drop = gate(cfg, source, destination, integrations)
    for applies, reason, may_wait in checks:
        if drop is None and applies:
            if may_wait and not final and cfg.hold_seconds > 0:
                return reason
            drop = Drop(source, destination, reason)
    if drop is not None:
        out.drops.append(drop)
        return None
    return _GO


# ------------------------------------------------------------------ Mailmodo activity (8, 9)


def _activity_to_segment(act: MailmodoActivity, contact: Contact, out: ContactResult,
                         cfg: RoutingConfig, now: float | None,
                         source: Mapping[str, Any] | None, final: bool = False) -> str | None:
    """Route 8; returns the reason it waits for instead (not final, holds on)."""
    verdict = _route_gate(out, cfg, SOURCE_MAILMODO, SEGMENT, _integrations(act), final,
                          (act.event not in MAILMODO_TO_SEGMENT, UNSUPPORTED_EVENT, False),
                          (not contact.identified, NOT_IDENTIFIED, True))
    if verdict != _GO:
        return verdict
    out.sink_records.append(_segment_track(
        act.event_id, MAILMODO, MAILMODO_TO_SEGMENT[act.event], dict(act.fields), act.email,
        act.email_key, act.timestamp, contact.latest_user_id, contact.latest_anonymous_id,
        cfg, now, source))
    return None


def _activity_to_clevertap(act: MailmodoActivity, contact: Contact, out: ContactResult,
                           cfg: RoutingConfig, now: float | None,
                           source: Mapping[str, Any] | None, final: bool = False) -> str | None:
    """Route 9; returns the reason it waits for instead (not final, holds on)."""
    object_id = act.clevertap_id or contact.clevertap_id
    verdict = _route_gate(out, cfg, SOURCE_MAILMODO, CLEVERTAP, _integrations(act), final,
                          (act.event not in MAILMODO_TO_CLEVERTAP, UNSUPPORTED_EVENT, False),
                          (not object_id, NO_CLEVERTAP_ID, True))
    if verdict != _GO:
        return verdict
    assert object_id is not None
    ts = int(act.timestamp)
    evt_data = {k: v for k, v in act.fields.items() if k not in _NOT_EVENT_DATA}
    out.sink_records.append(cfg.record(
        CLEVERTAP, OP_EVENT, act.email_key, act.event_id,
        {"object_id": object_id, "evt_name": MAILMODO_TO_CLEVERTAP[act.event],
         "evt_data": evt_data, "ts": ts}, source=source, now=now))
    if act.event != "form_submitted":
        return None
    template = act.fields.get("template_name") or act.fields.get("form_name")
    if not isinstance(template, str) or not template.strip():
        out.drops.append(Drop(SOURCE_MAILMODO, CLEVERTAP, MISSING_TEMPLATE_NAME))
        return None
    responses = act.fields.get("form_responses")
    out.sink_records.append(cfg.record(
        CLEVERTAP, OP_EVENT, act.email_key, act.event_id,
        {"object_id": object_id, "evt_name": f"MM {template.strip()} Form Submitted",
         "evt_data": dict(responses) if isinstance(responses, dict) else {}, "ts": ts},
        part="form", source=source, now=now))
    return None


# ------------------------------------------------------------------ Mailjet (11), CleverTap (10)


def _mailjet_to_segment(ev: MailjetEvent, contact: Contact, out: ContactResult,
                        cfg: RoutingConfig, now: float | None,
                        source: Mapping[str, Any] | None, final: bool = False) -> str | None:
    """Route 11; a contact not identified yet waits for its identify (its userId), unless
    final: then the email is the anonymousId, as without holds."""
    if _route_gate(out, cfg, SOURCE_MAILJET, SEGMENT, _integrations(ev), final,
                   (ev.event == "blocked" and not cfg.send_blocked, BLOCKED, False),
                   (ev.event not in MAILJET_TO_SEGMENT, UNSUPPORTED_EVENT, False)) != _GO:
        return None
    if not contact.identified and not final and cfg.hold_seconds > 0:
        return NOT_IDENTIFIED
    properties = dict(ev.fields)
    if ev.message_id is not None:
        properties["MessageID"] = ev.message_id  # exact decimal string
    out.sink_records.append(_segment_track(
        ev.event_id, MAILJET, MAILJET_TO_SEGMENT[ev.event], properties, ev.email,
        ev.email_key, ev.time, contact.latest_user_id, None, cfg, now, source))
    return None


def _trigger_to_mailmodo(trig: CleverTapTrigger, out: ContactResult, cfg: RoutingConfig,
                         now: float | None, source: Mapping[str, Any] | None) -> None:
    if _route_gate(out, cfg, SOURCE_CLEVERTAP, MAILMODO, _integrations(trig), True) != _GO:
        return
    payload = {"email": trig.email, "campaign_id": trig.campaign_id, "data": dict(trig.data),
               "campaign_data": dict(trig.campaign_data)}
    out.sink_records.append(cfg.record(MAILMODO, OP_TRIGGER_CAMPAIGN, trig.email_key,
                                       trig.event_id, payload, source=source, now=now))


_PARTS = {(SOURCE_MAILMODO, NOT_IDENTIFIED): _activity_to_segment,
          (SOURCE_MAILMODO, NO_CLEVERTAP_ID): _activity_to_clevertap,
          (SOURCE_MAILJET, NOT_IDENTIFIED): _mailjet_to_segment}
