"""Webhooks into the raw topics:

- POST /webhooks/mailmodo: a Mailmodo activity event (JSON object) -> one record keyed by
  its normalised `email`. A JSON array of events -> one record per item.
- POST /webhooks/mailjet: a Mailjet Event API payload (one object or an array) -> the body,
  unchanged (MessageID beyond 2^53 stays exact), as ONE record keyed by the first item's
  normalised `email`. An empty array is answered 200 and nothing is written. Mailjet
  retries anything but 200 every 30 s for 24 h, so we answer as soon as Kafka acked.
- POST /webhooks/clevertap/{campaign_id} and /webhooks/clevertap: a CleverTap webhook call
  (`{email, data, ...}` or `{targetId, key_values, profiles:[...]}`) -> the body, unchanged,
  as one record keyed by the first profile's normalised email, with the Kafka header
  `campaign_id` = the path id. Without a path id the campaign id comes from the body
  (`campaign_id` or `key_values.campaign_id`); a call with none anywhere is still written
  and the ingest agent dead-letters it (`missing_campaign_id`), because rejecting it here
  would also reject CleverTap's test call.

Auth: STREAMPROC_INGEST_WEBHOOK_TOKEN as `Authorization: Bearer <token>`, as the Basic
password (any username, e.g. https://hook:<token>@host/...), or as the `token` query
parameter. Mailjet and CleverTap let you configure only a URL, so use the query parameter
(or URL user-info) there; the token then sits in their settings and in any proxy log, so
give it its own value and rotate it there. No token configured -> 401 always. The token
is checked before the body is read.

Status codes: 200 written and acknowledged; 400 not JSON / not an object (or array) / body
not decodable; 401 auth; 413 body over STREAMPROC_INGEST_MAX_BODY_BYTES; 503 Kafka did not
acknowledge in time (retry); 500 unexpected (logged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from streamproc.core.errors import EventError
from streamproc.core.events.common import json_type, loads_json
from streamproc.http.ingest.common import (
    IngestError,
    Record,
    Reply,
    add_route,
    normalised_email,
    read_body,
    webhook_authorized,
    write,
)

if TYPE_CHECKING:
    from faust.web import Request

    from streamproc.worker.context import Runtime


def first_email_mailjet(body: Any) -> bytes | None:
    """Key of a Mailjet payload: the first event's email, normalised."""
    first = body[0] if isinstance(body, list) and body else body
    return normalised_email(first.get("email")) if isinstance(first, dict) else None


def first_email_clevertap(body: dict[str, Any]) -> bytes | None:
    """Key of a CleverTap call: the simple form's email, else the first profile's."""
    for k in ("email", "Email"):
        key = normalised_email(body.get(k))
        if key:
            return key
    profiles = body.get("profiles")
    if isinstance(profiles, list) and profiles and isinstance(profiles[0], dict):
        for k in ("Email", "email"):
            key = normalised_email(profiles[0].get(k))
            if key:
                return key
    return None


def mailmodo_records(body: Any) -> list[tuple[bytes | None, bytes]]:
    """(key, value) per Mailmodo event: an object is one, an array one per item."""
    items = body if isinstance(body, list) else [body]
    return [(normalised_email(it.get("email")) if isinstance(it, dict) else None,
             orjson.dumps(it)) for it in items]


async def _authorized_body(rt: Runtime, request: Request, *, exact_ints: bool = False,
                           ) -> tuple[bytes, Any]:
    ing = rt.settings.ingest
    if not webhook_authorized(request.headers.get("Authorization"),
                              request.query.get("token"), ing.webhook_token.get()):
        raise IngestError(401, "unauthorized",
                          "missing or invalid token" if ing.webhook_token else
                          "no webhook token is configured (STREAMPROC_INGEST_WEBHOOK_TOKEN)",
                          headers={"WWW-Authenticate": 'Bearer realm="webhooks"'})
    raw = await read_body(request, ing.max_body_bytes)
    try:
        body = loads_json(raw, exact_ints=exact_ints)
    except EventError as e:
        raise IngestError(400, e.reason, e.message) from None
    return raw, body


def _need(body: Any, *kinds: type) -> None:
    if not isinstance(body, kinds):
        want = " or ".join("a JSON object" if k is dict else "an array" for k in kinds)
        raise IngestError(400, "not_object", f"the body must be {want}, got {json_type(body)}")


async def mailmodo(rt: Runtime, request: Request) -> Reply:
    _, body = await _authorized_body(rt, request)
    _need(body, dict, list)
    topic = rt.topology.inputs["mailmodo"].name
    records: list[Record] = [(topic, k, v, []) for k, v in mailmodo_records(body)]
    await write(rt, records)
    return Reply(200, {"success": True, "records": len(records)})


async def mailjet(rt: Runtime, request: Request) -> Reply:
    raw, body = await _authorized_body(rt, request, exact_ints=True)
    _need(body, dict, list)
    if isinstance(body, list) and not body:
        return Reply(200, {"success": True, "records": 0})
    await write(rt, [(rt.topology.inputs["mailjet"].name, first_email_mailjet(body), raw, [])])
    return Reply(200, {"success": True, "records": 1})


async def clevertap(rt: Runtime, request: Request, campaign_id: str | None = None) -> Reply:
    raw, body = await _authorized_body(rt, request, exact_ints=True)
    _need(body, dict)
    headers = [("campaign_id", campaign_id.strip().encode("utf-8"))] \
        if campaign_id and campaign_id.strip() else []
    await write(rt, [(rt.topology.inputs["clevertap"].name, first_email_clevertap(body), raw,
                      headers)])
    return Reply(200, {"success": True, "records": 1})


def register(rt: Runtime) -> None:
    add_route(rt, "/webhooks/mailmodo", "webhooks.mailmodo", mailmodo)
    add_route(rt, "/webhooks/mailjet", "webhooks.mailjet", mailjet)
    add_route(rt, "/webhooks/clevertap", "webhooks.clevertap", clevertap)
    add_route(rt, "/webhooks/clevertap/{campaign_id}", "webhooks.clevertap", clevertap)
