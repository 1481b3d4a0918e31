"""Mailjet sink records -> POST /contactslist/{list_id}/managecontact (one contact per request),
and the POST /contactmetadata definitions a new property needs. Pure: no auth, no I/O."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from streamproc.config.settings import MailjetSettings
from streamproc.core.errors import ConfigError, Permanent
from streamproc.core.records import OP_CONTACT_UPSERT, SinkRecord
from streamproc.destinations.outcomes import rejected
from streamproc.destinations.property_values import Scalar, put
from streamproc.destinations.request import HttpRequest

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_NAME_CHAR = re.compile(r"[^a-z0-9_]+")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def property_name(key: str) -> str:
    """A trait name as a Mailjet property name: snake_case, lowercase, [a-z0-9_] only.
    firstName -> first_name, "Plan Tier" -> plan_tier, postalCode -> postal_code."""
    snake = _CAMEL_BOUNDARY.sub("_", str(key).strip()).lower()
    return _NOT_NAME_CHAR.sub("_", snake).strip("_")


def traits_to_properties(traits: dict[str, Any], *, prefix: str = "") -> dict[str, Scalar]:
    """Traits -> managecontact Properties: names via property_name, nested objects flattened as
    parent_child, lists as JSON text, nulls and `email` dropped. On a name clash the trait whose
    name was already in Mailjet form wins (first_name beats firstName)."""
    out: dict[str, Scalar] = {}
    ordered = sorted(traits.items(), key=lambda kv: property_name(kv[0]) != str(kv[0]))
    for key, value in ordered:
        name = property_name(key)
        if not name or (not prefix and name == "email"):
            continue
        full = f"{prefix}_{name}" if prefix else name
        put(out, full, value, lambda nested, under: traits_to_properties(nested, prefix=under))
    return out


def contact_name(payload: dict[str, Any]) -> str | None:
    """Name: payload name, else traits name, else "firstName lastName"."""
    traits = payload.get("traits") if isinstance(payload.get("traits"), dict) else {}
    for value in (payload.get("name"), traits.get("name")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    first = traits.get("firstName") or traits.get("first_name")
    last = traits.get("lastName") or traits.get("last_name")
    parts = [p.strip() for p in (first, last) if isinstance(p, str) and p.strip()]
    return " ".join(parts) or None


def contact_upsert_request(record: SinkRecord, settings: MailjetSettings) -> HttpRequest:
    """POST /contactslist/{list_id}/managecontact {Email, Name?, Action, Properties?}."""
    if not settings.list_id:
        raise ConfigError("STREAMPROC_MAILJET_LIST_ID is required to deliver to Mailjet")
    email = record.payload.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise rejected("missing_email", f"record {record.id} has no usable email")
    body: dict[str, Any] = {"Email": email.strip()}
    name = contact_name(record.payload)
    if name:
        body["Name"] = name
    body["Action"] = settings.action
    traits = record.payload.get("traits")
    properties = traits_to_properties(traits if isinstance(traits, dict) else {})
    if properties:
        body["Properties"] = properties
    path = f"/contactslist/{quote(str(settings.list_id), safe='')}/managecontact"
    return HttpRequest("POST", path, body, [record.id], "managecontact",
                       record_keys=[email.strip()])


def mailjet_data_type(value: Any) -> str:
    """The contactmetadata Datatype for a value: bool, int, float, datetime (datetime objects and
    full RFC 3339 date-times with a zone) or str (everything else, dates without a time too)."""
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime | date):
        return "datetime"
    if isinstance(value, str) and _RFC3339.match(value.strip()):
        return "datetime"
    return "str"


def contactmetadata_request(name: str, value: Any) -> HttpRequest:
    """POST /contactmetadata {Datatype, Name, NameSpace: "static"}: defines one property, its
    type inferred from an example value. (Mailjet's examples spell the field `Datatype`.)"""
    body = {"Datatype": mailjet_data_type(value), "Name": name, "NameSpace": "static"}
    return HttpRequest("POST", "/contactmetadata", body, [], "contactmetadata")


def property_definition_requests(request: HttpRequest, names: list[str]) -> list[HttpRequest]:
    """The /contactmetadata requests that define `names`, typed by the values `request` sent."""
    sent = request.body.get("Properties") if isinstance(request.body, dict) else None
    sent = sent if isinstance(sent, dict) else {}
    return [contactmetadata_request(name, sent.get(name, "")) for name in names]


def build_requests(records: list[SinkRecord], settings: MailjetSettings, *,
                   now: float | None = None
                   ) -> tuple[list[HttpRequest], list[tuple[SinkRecord, Permanent]]]:
    """Records (in order) -> one managecontact request each, in the same order."""
    del now  # the body carries no send time
    requests: list[HttpRequest] = []
    failures: list[tuple[SinkRecord, Permanent]] = []
    for record in records:
        try:
            if record.op != OP_CONTACT_UPSERT:
                raise rejected("unsupported_op", f"mailjet has no operation {record.op!r}")
            requests.append(contact_upsert_request(record, settings))
        except Permanent as err:
            failures.append((record, err))
    return requests, failures
