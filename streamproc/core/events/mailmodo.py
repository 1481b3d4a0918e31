"""Mailmodo activity raw topic: one email-activity event (our documented contract, see the
product spec) from bytes to a MailmodoActivity, or EventError with a stable reason. No I/O."""

from __future__ import annotations

import re
from typing import Any

from streamproc.core.errors import EventError
from streamproc.core.events.common import (as_id, json_type, loads_object, normalise_email,
                                           required_email, stable_hash, time_or_record_ts)
from streamproc.core.events.model import MailmodoActivity

MAX_BYTES = 1_048_576

# Canonical event -> the Segment track name Mailmodo's Segment source uses for it.
SEGMENT_NAMES = {
    "sent": "Email Sent",
    "opened": "Email Opened",
    "clicked": "Link Clicked",
    "form_submitted": "Email Form Submitted",
    "spam": "Email Marked as Spam",
    "bounced": "Email Bounced",
    "unsubscribed": "Email Unsubscribed",
}

# Accepted spellings, compared after lowercasing and turning spaces/hyphens/dots into '_'.
_ALIASES = {
    "sent": ("sent", "send", "email_sent"),
    "opened": ("opened", "open", "email_opened", "email_open"),
    "clicked": ("clicked", "click", "link_clicked", "email_clicked", "email_link_clicked"),
    "form_submitted": ("form_submitted", "form_submit", "form_submission", "submitted",
                       "email_form_submitted", "form_submit_event"),
    "spam": ("spam", "marked_as_spam", "email_marked_as_spam", "spam_report", "spam_reported",
             "complaint"),
    "bounced": ("bounced", "bounce", "email_bounced"),
    "unsubscribed": ("unsubscribed", "unsubscribe", "unsub", "email_unsubscribed"),
}
_EVENT_MAP = {alias: canon for canon, aliases in _ALIASES.items() for alias in aliases}

# Contract fields kept in `fields`, by kind.
_STRING_FIELDS = ("email_id", "email_subject", "email_type", "template_id", "template_name",
                  "campaign_id", "campaign_name", "campaign_type", "campaign_trigger_source",
                  "link_id", "link_url", "form_id", "form_name", "submission_type", "reason")
_BOOL_FIELDS = ("apple_privacy_open", "is_hard_bounce")
_OBJECT_FIELDS = ("form_responses",)
CONTRACT_FIELDS = _STRING_FIELDS + _BOOL_FIELDS + _OBJECT_FIELDS


def canonical_event(name: Any) -> str | None:
    """'Email Opened', 'open', 'OPENED' -> 'opened'; None when not a known activity."""
    if not isinstance(name, str):
        return None
    canon = _CANONICAL.get(name, False)
    if canon is False:  # not seen yet (names recur: mapped once, bounded)
        canon = _EVENT_MAP.get(_EVENT_SEPARATORS.sub("_", name.strip().lower()))
        if len(name) <= EVENT_CACHED_LEN:  # bounded in bytes too: a 1 MB name is not kept
            if len(_CANONICAL) >= 1_000:
                _CANONICAL.clear()
            _CANONICAL[name] = canon
    return canon


_EVENT_SEPARATORS = re.compile(r"[\s\-.]+")
_CANONICAL: dict[str, str | None] = {}
EVENT_CACHED_LEN = 64


def parse_mailmodo(raw: bytes, *, record_ts: float | None = None,
                   max_bytes: int = MAX_BYTES) -> MailmodoActivity:
    """Parse one activity. `record_ts` (Kafka record time) is used only when the body has no
    `timestamp`."""
    obj = loads_object(raw, max_bytes)

    name = obj.get("event")
    if name is None or name == "":
        raise EventError("missing_event", "activity has no event")
    if not isinstance(name, str):
        raise EventError("wrong_type", f"event must be a string, got {json_type(name)}")
    event = canonical_event(name)
    if event is None:
        raise EventError("unknown_event", f"unknown Mailmodo activity {name[:60]!r}")

    email = required_email(obj.get("email"), "activity has no email")
    timestamp = time_or_record_ts(obj.get("timestamp"), "timestamp", record_ts,
                                  "activity has no timestamp")

    explicit_id = as_id(obj.get("event_id"), "event_id") or as_id(obj.get("id"), "id")
    return MailmodoActivity(
        event=event,
        email=email,
        email_key=normalise_email(email),
        timestamp=timestamp,
        fields=_contract_fields(obj),
        clevertap_id=as_id(obj.get("clevertap_id"), "clevertap_id"),
        event_id=explicit_id or stable_hash(obj, "mm-"),
        raw=obj,
    )


def _contract_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _STRING_FIELDS:
        v = obj.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise EventError("wrong_type", f"{key} must be a string, got {json_type(v)}")
        out[key] = as_id(v, key) if not isinstance(v, str) else v
    for key in _BOOL_FIELDS:
        if obj.get(key) is not None:
            out[key] = _as_bool(obj[key], key)
    for key in _OBJECT_FIELDS:
        v = obj.get(key)
        if v is not None and not isinstance(v, dict):
            raise EventError("wrong_type", f"{key} must be an object, got {json_type(v)}")
        if v is not None:
            out[key] = v
    if isinstance(out.get("campaign_type"), str):  # CONTACT_LIST | TRIGGERED
        out["campaign_type"] = re.sub(r"[\s\-]+", "_", out["campaign_type"].strip()).upper()
    if isinstance(out.get("submission_type"), str):  # amp | web
        out["submission_type"] = out["submission_type"].strip().lower()
    return out


def _as_bool(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    raise EventError("wrong_type", f"{key} must be a boolean, got {json_type(v)}")
