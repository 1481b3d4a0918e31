"""Mailmodo sink records -> request descriptions: addToList(/batch) for contact upserts, addEvent,
triggerCampaign/{id}. Pure: no auth, no I/O. Keeps order per key across the requests returned."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from streamproc.destinations.outcomes import rejected
from streamproc.destinations.request import HttpRequest
from streamproc.destinations.property_values import (Scalar, flatten, scalar, scalars,
                                                     unix_seconds)
from streamproc.config.settings import MailmodoSettings
from streamproc.core.errors import Permanent
from streamproc.core.records import (OP_ADD_EVENT, OP_CONTACT_UPSERT, OP_TRIGGER_CAMPAIGN,
                                     SinkRecord)

MAX_CONTACTS_PER_BATCH = 100

# Segment reserved traits (camelCase or snake_case) and Mailmodo's own names -> predefined property.
RESERVED_TRAITS = {
    "firstName": "first_name", "first_name": "first_name", "firstname": "first_name",
    "lastName": "last_name", "last_name": "last_name", "lastname": "last_name",
    "name": "name", "gender": "gender", "age": "age", "birthday": "birthday", "phone": "phone",
    "title": "designation", "designation": "designation", "industry": "industry",
    "description": "description", "anniversaryDate": "anniversary_date",
    "anniversary_date": "anniversary_date", "address1": "address1", "address2": "address2",
    "city": "city", "state": "state", "country": "country", "postalCode": "postal_code",
    "postal_code": "postal_code",
}
ADDRESS_PARTS = {
    "street": "address1", "address1": "address1", "line1": "address1", "addressLine1": "address1",
    "street2": "address2", "address2": "address2", "line2": "address2", "addressLine2": "address2",
    "city": "city", "state": "state", "country": "country",
    "postalCode": "postal_code", "postal_code": "postal_code",
}
COMPANY_PARTS = {"name": "company", "industry": "industry"}


def normalised_email(email: str) -> str:
    return email.strip().lower()


def traits_to_contact_properties(traits: dict[str, Any]) -> dict[str, Scalar]:
    """Segment traits -> Mailmodo `data`: reserved traits to predefined properties (an exact
    snake_case name beats its camelCase alias; top-level beats address{}/company{} parts); the
    rest are custom properties under their own names, nested objects flattened as parent_child,
    lists as JSON text, nulls dropped. `email` is not a data property."""
    data: dict[str, Scalar] = {}
    custom: dict[str, Any] = {}
    exact = {k: v for k, v in traits.items() if RESERVED_TRAITS.get(k) == k}
    aliased = {k: v for k, v in traits.items() if k in RESERVED_TRAITS and k not in exact}
    for key, value in [*exact.items(), *aliased.items()]:
        v = scalar(value)
        if v is not None:
            data.setdefault(RESERVED_TRAITS[key], v)
    for key, value in traits.items():
        if key in RESERVED_TRAITS or key.lower() == "email":
            continue
        if key == "address" and isinstance(value, dict):
            _take_parts(value, ADDRESS_PARTS, "address", data, custom)
        elif key == "address":
            _set_scalar(data, "address1", value)
        elif key == "company" and isinstance(value, dict):
            _take_parts(value, COMPANY_PARTS, "company", data, custom)
        elif key == "company":
            _set_scalar(data, "company", value)
        else:
            custom[key] = value
    for name, v in flatten(custom).items():
        data.setdefault(name, v)
    return data


def _take_parts(obj: dict[str, Any], parts: dict[str, str], prefix: str,
                data: dict[str, Scalar], custom: dict[str, Any]) -> None:
    for key, value in obj.items():
        if key in parts:
            _set_scalar(data, parts[key], value)
        else:
            custom[f"{prefix}_{key}"] = value


def _set_scalar(out: dict[str, Scalar], name: str, value: Any) -> None:
    v = scalar(value)
    if v is not None:
        out.setdefault(name, v)


def event_properties(properties: dict[str, Any]) -> dict[str, Scalar]:
    """addEvent event_properties: str|number|bool; objects and lists as JSON text; nulls dropped."""
    return scalars(properties)


def _email(record: SinkRecord) -> str:
    email = record.payload.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise rejected("missing_email", f"record {record.id} has no usable email")
    return email.strip()


def _object(record: SinkRecord, field: str) -> dict[str, Any]:
    value = record.payload.get(field)
    return value if isinstance(value, dict) else {}


def contact_upsert_request(record: SinkRecord, list_name: str) -> HttpRequest:
    """POST /addToList {email, listName, data}: one contact."""
    email = _email(record)
    body = {"email": email, "listName": list_name,
            "data": traits_to_contact_properties(_object(record, "traits"))}
    return HttpRequest("POST", "/addToList", body, [record.id], "addToList", record_keys=[email])


def contact_batch_request(records: list[SinkRecord], list_name: str) -> HttpRequest:
    """POST /addToList/batch {listName, values:[{email, data}]}: up to 100 distinct emails;
    one such call in flight per account (exclusive)."""
    values = [{"email": _email(r), "data": traits_to_contact_properties(_object(r, "traits"))}
              for r in records]
    return HttpRequest("POST", "/addToList/batch", {"listName": list_name, "values": values},
                       [r.id for r in records], "addToList/batch", exclusive=True,
                       record_keys=[v["email"] for v in values])


def add_event_request(record: SinkRecord) -> HttpRequest:
    """POST /addEvent {email, event_name, ts, event_properties}: one event."""
    email = _email(record)
    name = record.payload.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise rejected("missing_event_name", f"record {record.id} has no event_name")
    body = {"email": email, "event_name": name,
            "ts": unix_seconds(record.payload.get("ts"), record.created_at),
            "event_properties": event_properties(_object(record, "properties"))}
    return HttpRequest("POST", "/addEvent", body, [record.id], "addEvent", record_keys=[email])


def trigger_campaign_request(record: SinkRecord) -> HttpRequest:
    """POST /triggerCampaign/{campaign_id} {email, data, campaign_data, subject?, addToList?}."""
    email = _email(record)
    campaign_id = record.payload.get("campaign_id")
    if isinstance(campaign_id, int) and not isinstance(campaign_id, bool):
        campaign_id = str(campaign_id)
    if not isinstance(campaign_id, str) or not campaign_id.strip():
        raise rejected("missing_campaign_id", f"record {record.id} has no campaign_id")
    body: dict[str, Any] = {"email": email, "data": flatten(_object(record, "data")),
                            "campaign_data": flatten(_object(record, "campaign_data"))}
    for field, name in (("subject", "subject"), ("addToList", "addToList"),
                        ("add_to_list", "addToList")):
        value = record.payload.get(field)
        if isinstance(value, str) and value:
            body.setdefault(name, value)
    path = f"/triggerCampaign/{quote(campaign_id.strip(), safe='')}"
    return HttpRequest("POST", path, body, [record.id], "triggerCampaign", record_keys=[email])


class _OrderedRequests:
    """Requests in send order; a record may join an open batch only if no request already placed
    after that batch carries the same key (so order per key holds)."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest | list[SinkRecord]] = []
        self.last_index: dict[str, int] = {}
        self.open_batches: list[int] = []
        self.batch_emails: dict[int, set[str]] = {}

    def _floor(self, keys: tuple[str, ...]) -> int:
        return max(self.last_index.get(k, -1) for k in keys)

    def _mark(self, keys: tuple[str, ...], index: int) -> None:
        for k in keys:
            self.last_index[k] = index

    def add_single(self, request: HttpRequest, keys: tuple[str, ...]) -> None:
        self.requests.append(request)
        self._mark(keys, len(self.requests) - 1)

    def add_to_batch(self, record: SinkRecord, email_key: str, keys: tuple[str, ...]) -> None:
        floor = self._floor(keys)
        for index in self.open_batches:
            if index > floor and email_key not in self.batch_emails[index]:
                break
        else:
            self.requests.append([])
            index = len(self.requests) - 1
            self.open_batches.append(index)
            self.batch_emails[index] = set()
        batch = self.requests[index]
        assert isinstance(batch, list)
        batch.append(record)
        self.batch_emails[index].add(email_key)
        if len(batch) >= MAX_CONTACTS_PER_BATCH:
            self.open_batches.remove(index)
        self._mark(keys, index)


def build_requests(records: list[SinkRecord], settings: MailmodoSettings, *,
                   now: float | None = None
                   ) -> tuple[list[HttpRequest], list[tuple[SinkRecord, Permanent]]]:
    """A batch of Mailmodo sink records (in order) -> requests in send order, and the records
    that cannot be mapped. Records of one key (or email) appear in their original order."""
    del now  # uniform signature; Mailmodo bodies carry no send time
    ordered = _OrderedRequests()
    failures: list[tuple[SinkRecord, Permanent]] = []
    for record in records:
        try:
            email = _email(record)
            keys = (record.key, normalised_email(email))
            if record.op == OP_CONTACT_UPSERT and settings.use_batch:
                ordered.add_to_batch(record, normalised_email(email), keys)
            elif record.op == OP_CONTACT_UPSERT:
                ordered.add_single(contact_upsert_request(record, settings.list_name), keys)
            elif record.op == OP_ADD_EVENT:
                ordered.add_single(add_event_request(record), keys)
            elif record.op == OP_TRIGGER_CAMPAIGN:
                ordered.add_single(trigger_campaign_request(record), keys)
            else:
                raise rejected("unsupported_op", f"mailmodo has no operation {record.op!r}")
        except Permanent as err:
            failures.append((record, err))
    requests = [r if isinstance(r, HttpRequest) else contact_batch_request(r, settings.list_name)
                for r in ordered.requests]
    return requests, failures
