"""CleverTap triggers raw topic: a webhook call that should trigger a Mailmodo campaign, in
the simple form {email, data, clevertap_id} or CleverTap's batched {targetId, key_values,
profiles[]} form, to one CleverTapTrigger per profile plus per-profile EventErrors. No I/O."""

from __future__ import annotations

from typing import Any

from streamproc.core.errors import EventError
from streamproc.core.logs import clip
from streamproc.core.events.common import (as_id, get_object, is_email, json_type, loads_object,
                                           normalise_email, stable_hash)
from streamproc.core.events.model import CleverTapTrigger

MAX_BYTES = 1_048_576
EMAIL_KEYS = ("Email", "email")
CLEVERTAP_ID_KEYS = ("objectId", "CleverTap ID", "clevertap_id", "ct_id", "ctId")
CAMPAIGN_ID_KEYS = ("campaign_id", "campaignId")
# Profile keys that are identifiers or delivery metadata, never contact data.
_NOT_DATA = frozenset((*EMAIL_KEYS, *CLEVERTAP_ID_KEYS, "Identity", "identity",
                       "all_identities", "push_token", "profileData", "event_properties",
                       "key_values", "ts", "platform"))


def parse_clevertap(raw: bytes, *, campaign_id: str | None = None, max_bytes: int = MAX_BYTES,
                    ) -> tuple[list[CleverTapTrigger], list[EventError]]:
    """Parse one webhook call. campaign_id: body `campaign_id`, else key_values.campaign_id
    (webhook form), else the `campaign_id` kwarg (ingest URL path), else the whole call
    raises `missing_campaign_id`. A bad profile becomes an EventError whose message starts
    with 'profile <index>:'; the others are returned. A CleverTap test call (is_test: true)
    and an empty profiles array give ([], [])."""
    body = loads_object(raw, max_bytes)
    body_hash = stable_hash(body)
    if "profiles" in body or "targetId" in body or "key_values" in body:
        return _webhook_form(body, body_hash, campaign_id)
    cid = _campaign_id(body, {}, campaign_id)
    trigger = _trigger(body, 0, body_hash, cid, data=get_object(body, "data"),
                       campaign_data=get_object(body, "campaign_data"))
    return [trigger], []


def _webhook_form(body: dict[str, Any], body_hash: str, kwarg_cid: str | None,
                  ) -> tuple[list[CleverTapTrigger], list[EventError]]:
    key_values = get_object(body, "key_values")
    profiles = body.get("profiles")
    if profiles is None:
        profiles = []
    if not isinstance(profiles, list):
        raise EventError("wrong_type", f"profiles must be an array, got {json_type(profiles)}")
    if body.get("is_test") is True or not profiles:
        return [], []
    cid = _campaign_id(body, key_values, kwarg_cid)
    campaign_data = get_object(body, "campaign_data")
    shared = {k: v for k, v in key_values.items() if k not in CAMPAIGN_ID_KEYS}
    triggers: list[CleverTapTrigger] = []
    errors: list[EventError] = []
    for i, profile in enumerate(profiles):
        try:
            if not isinstance(profile, dict):
                raise EventError("not_object", f"profile must be an object, got {json_type(profile)}")
            data = {k: v for k, v in profile.items() if k not in _NOT_DATA}
            data.update(get_object(profile, "profileData"))
            data.update(shared)  # the campaign's key_values win over profile properties
            event_props = get_object(profile, "event_properties")
            triggers.append(_trigger(profile, i, body_hash, cid, data=data,
                                     campaign_data={**event_props, **campaign_data}))
        except EventError as e:
            errors.append(EventError(e.reason, f"profile {i}: {e.message}"))
    return triggers, errors


def _campaign_id(body: dict[str, Any], key_values: dict[str, Any], kwarg: str | None) -> str:
    for source, what in ((body, ""), (key_values, "key_values.")):
        for key in CAMPAIGN_ID_KEYS:
            cid = as_id(source.get(key), what + key)
            if cid is not None:
                return cid.strip()
    if kwarg is not None and str(kwarg).strip():
        return str(kwarg).strip()
    raise EventError("missing_campaign_id", "no campaign_id in the body, key_values or ingest path")


def _trigger(obj: dict[str, Any], index: int, body_hash: str, cid: str, *,
             data: dict[str, Any], campaign_data: dict[str, Any]) -> CleverTapTrigger:
    email = _email(obj)
    clevertap_id = None
    for key in CLEVERTAP_ID_KEYS:
        clevertap_id = as_id(obj.get(key), key)
        if clevertap_id is not None:
            break
    key = normalise_email(email)
    return CleverTapTrigger(
        email=email,
        email_key=key,
        campaign_id=cid,
        data=data,
        campaign_data=campaign_data,
        clevertap_id=clevertap_id,
        event_id=stable_hash([body_hash, index, key], "ct-"),
        raw=obj,
    )


def _email(obj: dict[str, Any]) -> str:
    """Email|email, else profileData.Email|email, else Identity when it is an email."""
    pdata = obj.get("profileData") if isinstance(obj.get("profileData"), dict) else {}
    candidates = [obj.get(k) for k in EMAIL_KEYS] + [pdata.get(k) for k in EMAIL_KEYS]
    present = [c for c in candidates if c is not None and c != ""]
    for c in present:
        if is_email(c):
            return c
    for k in ("Identity", "identity"):
        if is_email(obj.get(k)):
            return obj[k]
    if present:
        shown = clip(present[0], 80) if isinstance(present[0], str) else json_type(present[0])
        raise EventError("bad_email", f"email {shown!r} is not an email address")
    raise EventError("missing_email", "no email (Email, email or an email Identity)")
