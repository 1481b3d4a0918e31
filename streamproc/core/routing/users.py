"""The users stage (by-user topic, known-users table): Segment identify/track/alias/page/screen/
group and MergeUser -> Mailmodo and Mailjet sink records, ContactUpdates, MergeUser forwards and
drops (routes 1-7); tracks held for their user's identify, and their sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from streamproc.core.events.common import normalise_email
from streamproc.core.events.model import SegmentEvent
from streamproc.core.events.traits import reserved_traits, snake_case
from streamproc.core.records import (
    INTEGRATION_NAMES, MAILJET, MAILMODO, OP_ADD_EVENT, OP_CONTACT_UPSERT, SinkRecord,
)
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.drops import (
    EXPIRED, HELD, MISSING_EMAIL, OVERFLOW, RELEASED, SOURCE_SEGMENT, UNKNOWN_USER,
    UNSUPPORTED_TYPE, Drop, Hold,
)
from streamproc.core.routing.holds import HoldCounts, already_held, expired, held_entry, held_event
from streamproc.core.routing.integrations import enabled_for, gate
from streamproc.core.routing.messages import ContactUpdate, MergeUser, SweepPending, key_for
from streamproc.core.state.model import (
    KnownUser, add_email, email_for, hold, merge_user_traits, merge_users, touch, trait_view,
)

AUDIENCE_EVENTS = {"Audience Entered": True, "Audience Exited": False}
CONTACT_DESTINATIONS = (MAILMODO, MAILJET)  # identify and audience changes go to both
TRACK_DESTINATIONS = (MAILMODO,)
_USER_HOLD = {o: Hold(SOURCE_SEGMENT, UNKNOWN_USER, o) for o in (HELD, RELEASED, EXPIRED, OVERFLOW)}


@dataclass(slots=True)
class UserResult(HoldCounts):
    user: KnownUser | None  # state for the by-user key after the event (None: no state)
    changed: bool = False  # write `user` back to the known-users table
    sink_records: list[SinkRecord] = field(default_factory=list)
    contact_updates: list[ContactUpdate] = field(default_factory=list)  # -> by-contact
    forwards: list[MergeUser] = field(default_factory=list)  # -> by-user
    drops: list[Drop] = field(default_factory=list)
    # tracks waiting for their user's identify (routing/holds.py): held, released, expired,
    # overflow; an expired or pushed-out hold is also in `drops` (unknown_user or its gate)
    holds: list[Hold] = field(default_factory=list)


def route_user_event(event: SegmentEvent | MergeUser | SweepPending, user: KnownUser | None,
                     cfg: RoutingConfig, now: float,
                     source: Mapping[str, Any] | None = None) -> UserResult:
    """Route one by-user message given the stored state of its key (`now`: wall clock,
    for holds; `source`: the input's {topic, partition, offset})."""
    out = UserResult(user)
    if isinstance(event, SweepPending):
        return sweep_pending(user, cfg, now) if user is not None else out
    if isinstance(event, MergeUser):
        _merge(event, out, cfg, now)
    elif event.type == "identify":
        _identify(event, out, cfg, now, source)
    elif event.type == "track":
        _track(event, out, cfg, now, source)
    elif event.type == "alias":
        _alias(event, out)
    else:  # page, screen, group
        for dest in CONTACT_DESTINATIONS:
            drop = gate(cfg, SOURCE_SEGMENT, dest, event.integrations)
            out.drops.append(drop or Drop(SOURCE_SEGMENT, dest, UNSUPPORTED_TYPE))
    return out


def sweep_pending(user: KnownUser, cfg: RoutingConfig, now: float) -> UserResult:
    """Held tracks past the hold time are dropped `unknown_user`; the sweeper calls it for
    users with held tracks (routing/holds.py). Tracks of a user who has an email are released."""
    out = UserResult(user)
    if user.pending:
        _release(out, cfg, now)
    return out


def sink_key(event: SegmentEvent) -> str:
    """The sink record key of a Segment input's records: its own by-user key, never an email
    from state. The key picks the sink partition, and so the ledger partition that remembers
    the delivery id: a replay must find it there whatever email the state names by then."""
    return key_for(event) or ""


# ------------------------------------------------------------------ identify (routes 1-3, 7)


def _identify(event: SegmentEvent, out: UserResult, cfg: RoutingConfig, now: float,
              source: Mapping[str, Any] | None) -> None:
    user = out.user or KnownUser(user_id=key_for(event) or "")
    out.user, out.changed = user, True
    touch(user, event.timestamp)
    traits = reserved_traits(event.traits)
    merge_user_traits(user, traits, event.timestamp, _excluded(event))
    email = event.email
    if email:
        add_email(user, email, event.timestamp)
    elif cfg.identify_email_from_state:
        email = user.latest_email
    for dest in CONTACT_DESTINATIONS:
        drop = gate(cfg, SOURCE_SEGMENT, dest, event.integrations)
        if drop is None and email is None:
            drop = Drop(SOURCE_SEGMENT, dest, MISSING_EMAIL)
        if drop is not None:
            out.drops.append(drop)
            continue
        assert email is not None
        payload = _contact_payload(dest, email, {**trait_view(user, dest), "email": email})
        out.sink_records.append(cfg.record(dest, OP_CONTACT_UPSERT, sink_key(event),
                                           event.message_id, payload, source=source, now=now))
    if email:
        sent = {**user.traits, "email": email}
        out.contact_updates.append(_contact_update(
            event, email, sent, {**user.trait_ts, "email": event.timestamp}))
    if user.pending and user.emails:
        _release(out, cfg, now)


def _excluded(event: SegmentEvent) -> list[str]:
    """The contact destinations this message's `integrations` object turns off (consent: the
    traits it sets never reach them, also when merged into later messages' calls)."""
    return [d for d in CONTACT_DESTINATIONS
            if not enabled_for(event.integrations, INTEGRATION_NAMES[d])]


def _contact_payload(dest: str, email: str, traits: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"email": email, "traits": traits}
    if dest == MAILJET:
        name = traits.get("name") if isinstance(traits.get("name"), str) else None
        if not name:
            parts = [traits.get(k) for k in ("firstName", "lastName")]
            name = " ".join(p for p in parts if isinstance(p, str) and p.strip()) or None
        if name:
            payload["name"] = name
    return payload


def _contact_update(event: SegmentEvent, email: str, traits: dict[str, Any],
                    trait_ts: dict[str, float] | None = None) -> ContactUpdate:
    return ContactUpdate(email=email, email_key=normalise_email(email), user_id=event.user_id,
                         anonymous_id=event.anonymous_id, traits=traits,
                         timestamp=event.timestamp, identified=True,
                         source_id=event.message_id, trait_ts=trait_ts or {})


# ------------------------------------------------------------------ track (routes 4, 5, 7)


def audience_change(event: SegmentEvent) -> tuple[str, bool] | None:
    """Engage `Audience Entered`/`Audience Exited`: (audience key, membership), the key being
    properties.audience_key, else snake_case(properties.audience_name); None otherwise."""
    if event.event not in AUDIENCE_EVENTS:
        return None
    key = event.properties.get("audience_key")
    if not isinstance(key, str) or not key.strip():
        name = event.properties.get("audience_name")
        key = snake_case(name) if isinstance(name, str) else ""
    return (key.strip(), AUDIENCE_EVENTS[event.event]) if key and key.strip() else None


def _track(event: SegmentEvent, out: UserResult, cfg: RoutingConfig, now: float,
           source: Mapping[str, Any] | None) -> None:
    audience = audience_change(event)
    dests = CONTACT_DESTINATIONS if audience else TRACK_DESTINATIONS
    gated = {d: gate(cfg, SOURCE_SEGMENT, d, event.integrations) for d in dests}
    open_dests = [d for d in dests if gated[d] is None]
    user = out.user
    known = user is not None and bool(user.emails)
    if open_dests and not known and cfg.hold_seconds > 0:
        if user is not None and already_held(user.pending, event.message_id):
            return
        user = user or KnownUser(user_id=key_for(event) or "")
        entry = held_entry(now, SOURCE_SEGMENT, event, event.message_id, source)
        pushed = hold(user, entry, cfg.max_pending)
        out.user, out.changed = user, True
        out.holds.append(_USER_HOLD[HELD])
        _overflow(out, pushed, cfg)
        return
    out.drops.extend(drop for drop in gated.values() if drop is not None)
    if not open_dests:
        return
    if not known:
        out.drops.extend(Drop(SOURCE_SEGMENT, d, UNKNOWN_USER) for d in open_dests)
        return
    assert user is not None
    touch(user, event.timestamp)
    out.changed = True
    email = email_for(user, event.email)
    assert email is not None
    if audience:
        key, member = audience
        merge_user_traits(user, {key: member}, event.timestamp, _excluded(event))
        for dest in open_dests:
            out.sink_records.append(cfg.record(
                dest, OP_CONTACT_UPSERT, sink_key(event), event.message_id,
                {"email": email, "traits": {key: member}}, source=source, now=now))
        out.contact_updates.append(_contact_update(event, email, {key: member}))
        return
    payload = {"email": email, "event_name": event.event, "ts": int(event.timestamp),
               "properties": event.properties}
    out.sink_records.append(cfg.record(MAILMODO, OP_ADD_EVENT, sink_key(event),
                                       event.message_id, payload, source=source, now=now))


def _drops_for(event: SegmentEvent, cfg: RoutingConfig, reason: str) -> list[Drop]:
    """The drops of a track that is not routed: its gate reasons, else `reason`."""
    dests = CONTACT_DESTINATIONS if audience_change(event) else TRACK_DESTINATIONS
    return [gate(cfg, SOURCE_SEGMENT, d, event.integrations) or Drop(SOURCE_SEGMENT, d, reason)
            for d in dests]


def _overflow(out: UserResult, pushed: list[dict[str, Any]], cfg: RoutingConfig) -> None:
    """Held tracks pushed out beyond cfg.max_pending: decided as expired, counted overflow."""
    out.holds.extend(_USER_HOLD[OVERFLOW] for _ in pushed)
    for old in pushed:
        out.drops.extend(_drops_for(held_event(old), cfg, UNKNOWN_USER))


def _release(out: UserResult, cfg: RoutingConfig, now: float) -> None:
    """Held tracks, in the order they came: routed when the user has an email by now, whatever
    their age (a catch-up after a gap longer than the hold time brings the identify right
    behind them); else dropped `unknown_user` once past the hold time; else kept."""
    assert out.user is not None
    user = out.user
    held, user.pending = user.pending, []
    out.changed = True
    for entry in held:
        event = held_event(entry)
        if user.emails:
            out.holds.append(_USER_HOLD[RELEASED])
            _track(event, out, cfg, now, entry.get("source") or None)
        elif expired(entry, cfg, now):  # still waiting and past its hold time
            out.holds.append(_USER_HOLD[EXPIRED])
            out.drops.extend(_drops_for(event, cfg, UNKNOWN_USER))
        else:
            user.pending.append(entry)


# ------------------------------------------------------------------ alias (route 6)


def _alias(event: SegmentEvent, out: UserResult) -> None:
    """Keyed by previousId: forward previousId's state to the new userId. Its held tracks move
    with it (they are released there)."""
    prev = out.user
    if prev is None or not event.user_id or event.user_id == event.previous_id:
        return
    out.forwards.append(MergeUser(user_id=event.user_id, previous_id=event.previous_id or "",
                                  state=prev.to_dict(), timestamp=event.timestamp,
                                  source_id=event.message_id))
    if prev.pending:
        prev.pending = []
        out.changed = True


def _merge(msg: MergeUser, out: UserResult, cfg: RoutingConfig, now: float) -> None:
    previous = KnownUser.from_dict(msg.state)
    user = out.user or KnownUser(user_id=msg.user_id)
    _overflow(out, merge_users(user, previous, cfg.max_pending), cfg)  # keeps the newest
    out.user, out.changed = user, True
    for email in previous.emails:  # their contacts learn the new userId
        out.contact_updates.append(ContactUpdate(
            email=email, email_key=normalise_email(email), user_id=msg.user_id, anonymous_id=None,
            traits={}, timestamp=msg.timestamp, identified=True, source_id=msg.source_id))
    if user.pending:
        _release(out, cfg, now)
