"""Table values: Contact (contacts table, keyed by normalised email) and KnownUser (known-users
table, keyed by userId), JSON-able via to_dict/from_dict, and the pure functions that update
them. Traits merge last-write-wins per key by event timestamp; emails are kept most recent last."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import Struct, field

from streamproc.core.events.common import normalise_email

MAX_PENDING = 100  # held inputs per user / contact; the oldest is dropped beyond this
MAX_IDS = 20  # user ids / anonymous ids remembered per contact (most recent last)


class _StateValue(Struct, gc=False):
    """A table value's codec: msgspec JSON, every field written; gc=False as the events
    (plain data without cycles, see streamproc/core/events/model.py)."""

    def dumps(self) -> bytes:
        return _ENCODE(self)

    @classmethod
    def loads(cls, raw: bytes) -> Any:
        """A table value, decoded by msgspec straight into the Struct; a value it refuses (an
        older or hand-written shape, e.g. a null list) is read field by field (from_dict)."""
        try:
            return _DECODE[cls](raw)
        except msgspec.DecodeError:
            return cls.from_dict(orjson.loads(raw))  # type: ignore[attr-defined]


class KnownUser(_StateValue):
    user_id: str
    emails: list[str] = field(default_factory=list)  # as sent, deduped by key, most recent last
    email_ts: dict[str, float] = field(default_factory=dict)  # normalised email -> event time
    traits: dict[str, Any] = field(default_factory=dict)  # merged, reserved keys canonical
    trait_ts: dict[str, float] = field(default_factory=dict)  # trait key -> event time
    first_seen: float | None = None
    last_seen: float | None = None
    # trait key -> destinations the message that set its current value excluded through its
    # `integrations` object: they never get that value (consent), see trait_view()
    trait_off: dict[str, list[str]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)  # held tracks {held_at, event,
    #                                                               source}, oldest first

    @property
    def email_keys(self) -> list[str]:
        return [normalise_email(e) for e in self.emails]

    @property
    def latest_email(self) -> str | None:
        return self.emails[-1] if self.emails else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id, "emails": list(self.emails), "email_ts": dict(self.email_ts),
            "traits": dict(self.traits), "trait_ts": dict(self.trait_ts),
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "pending": list(self.pending),
            **({"trait_off": dict(self.trait_off)} if self.trait_off else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KnownUser:
        return cls(
            user_id=d["user_id"], emails=list(d.get("emails") or []),
            email_ts=dict(d.get("email_ts") or {}), traits=dict(d.get("traits") or {}),
            trait_ts=dict(d.get("trait_ts") or {}), first_seen=d.get("first_seen"),
            last_seen=d.get("last_seen"), pending=list(d.get("pending") or []),
            trait_off=dict(d.get("trait_off") or {}),
        )



class Contact(_StateValue):
    email: str  # as last sent; the table key is normalise_email(email)
    user_ids: list[str] = field(default_factory=list)  # most recent last
    anonymous_ids: list[str] = field(default_factory=list)  # most recent last
    traits: dict[str, Any] = field(default_factory=dict)
    trait_ts: dict[str, float] = field(default_factory=dict)
    identified: bool = False  # identified through Segment
    clevertap_id: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    # held inputs {held_at, kind, event, source, waits: [reason]}, oldest first (routing/holds.py)
    pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return normalise_email(self.email)

    @property
    def latest_user_id(self) -> str | None:
        return self.user_ids[-1] if self.user_ids else None

    @property
    def latest_anonymous_id(self) -> str | None:
        return self.anonymous_ids[-1] if self.anonymous_ids else None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "email": self.email, "user_ids": list(self.user_ids),
            "anonymous_ids": list(self.anonymous_ids), "traits": dict(self.traits),
            "trait_ts": dict(self.trait_ts), "identified": self.identified,
            "clevertap_id": self.clevertap_id, "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }
        if self.pending:  # only when there are held inputs: most contacts never have any
            d["pending"] = list(self.pending)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contact:
        return cls(
            email=d["email"], user_ids=list(d.get("user_ids") or []),
            anonymous_ids=list(d.get("anonymous_ids") or []), traits=dict(d.get("traits") or {}),
            trait_ts=dict(d.get("trait_ts") or {}), identified=bool(d.get("identified")),
            clevertap_id=d.get("clevertap_id"), first_seen=d.get("first_seen"),
            last_seen=d.get("last_seen"), pending=list(d.get("pending") or []),
        )



_ENCODE = msgspec.json.Encoder().encode
_DECODE = {cls: msgspec.json.Decoder(cls).decode for cls in (KnownUser, Contact)}


# ------------------------------------------------------------------ update functions (in place)


def merge_traits(traits: dict[str, Any], trait_ts: dict[str, float], new: dict[str, Any],
                 ts: float) -> list[str]:
    """Last write wins per key by event time: a key is set when unknown or when `ts` is not
    older than the time it was last set. Returns the keys that changed value or time."""
    changed = []
    for key, value in new.items():
        seen = trait_ts.get(key)
        if seen is None or ts >= seen:
            if traits.get(key) != value or seen != ts:
                changed.append(key)
            traits[key] = value
            trait_ts[key] = ts
    return changed


def merge_user_traits(user: KnownUser, new: dict[str, Any], ts: float,
                      off: list[str]) -> None:
    """merge_traits into the user, remembering for each key whose value it set the
    destinations `off` (excluded by the message's `integrations` object)."""
    for key in merge_traits(user.traits, user.trait_ts, new, ts):
        if off:
            user.trait_off[key] = list(off)
        else:
            user.trait_off.pop(key, None)


def trait_view(user: KnownUser, destination: str) -> dict[str, Any]:
    """The merged traits `destination` may get: each key whose current value came through a
    message enabled for it (a value it may not get is left out, not replaced by an older one
    that it already has)."""
    if not user.trait_off:
        return dict(user.traits)
    return {k: v for k, v in user.traits.items() if destination not in user.trait_off.get(k, ())}


def touch(obj: KnownUser | Contact, ts: float) -> None:
    """Widen first/last seen to include event time `ts`."""
    if obj.first_seen is None or ts < obj.first_seen:
        obj.first_seen = ts
    if obj.last_seen is None or ts > obj.last_seen:
        obj.last_seen = ts


def add_email(user: KnownUser, email: str, ts: float) -> None:
    """Remember `email` (as sent) seen at event time `ts`; emails stay ordered by the last
    time each was seen, most recent last, deduped by normalised email."""
    key = normalise_email(email)
    prior = user.email_ts.get(key)
    if prior is None or ts >= prior:
        user.email_ts[key] = ts
        spelled = email
    else:
        spelled = next((e for e in user.emails if normalise_email(e) == key), email)
    rest = [e for e in user.emails if normalise_email(e) != key]
    user.emails = sorted(rest + [spelled],
                         key=lambda e: user.email_ts.get(normalise_email(e), 0.0))


def email_for(user: KnownUser, candidate: str | None) -> str | None:
    """`candidate` (as sent) when it is one of the user's emails, else the user's most recent
    email, else None."""
    if candidate and normalise_email(candidate) in user.email_keys:
        return candidate
    return user.latest_email


def hold(obj: KnownUser | Contact, entry: dict[str, Any],
         limit: int = MAX_PENDING) -> list[dict[str, Any]]:
    """Append a held input; returns the entries pushed out (oldest first) beyond `limit`."""
    obj.pending.append(entry)
    overflow = len(obj.pending) - limit
    if overflow <= 0:
        return []
    pushed, obj.pending = obj.pending[:overflow], obj.pending[overflow:]
    return pushed


def merge_users(target: KnownUser, previous: KnownUser,
                limit: int = MAX_PENDING) -> list[dict[str, Any]]:
    """Alias: fold the previous id's state into `target` (emails, traits by timestamp, seen
    times, held tracks: one entry per input id, so a merge processed twice adds none again).
    Returns the held entries pushed out (oldest first) beyond `limit`."""
    for email in previous.emails:
        add_email(target, email, previous.email_ts.get(normalise_email(email), 0.0))
    for key, value in previous.traits.items():
        merge_user_traits(target, {key: value}, previous.trait_ts.get(key, 0.0),
                          previous.trait_off.get(key, []))
    for ts in (previous.first_seen, previous.last_seen):
        if ts is not None:
            touch(target, ts)
    ids = {e["id"] for e in target.pending if e.get("id") is not None}
    merged = sorted(target.pending + [e for e in previous.pending
                                      if e.get("id") is None or e["id"] not in ids],
                    key=lambda p: p.get("held_at", 0.0))
    overflow = max(len(merged) - limit, 0)
    target.pending = merged[overflow:]
    return merged[:overflow]


def _remember(ids: list[str], value: str) -> list[str]:
    return ([i for i in ids if i != value] + [value])[-MAX_IDS:]


def add_user_id(contact: Contact, user_id: str | None = None,
                anonymous_id: str | None = None) -> None:
    """Record the (anonymous) user id seen with the contact, most recent last."""
    if user_id:
        contact.user_ids = _remember(contact.user_ids, user_id)
    if anonymous_id:
        contact.anonymous_ids = _remember(contact.anonymous_ids, anonymous_id)


def mark_identified(contact: Contact) -> None:
    contact.identified = True


def set_clevertap_id(contact: Contact, clevertap_id: str | None) -> None:
    """Remember the CleverTap ID (the newest one seen wins); None leaves it as is."""
    if clevertap_id:
        contact.clevertap_id = clevertap_id
