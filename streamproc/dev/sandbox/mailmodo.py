"""Sandbox Mailmodo API (base path /api/v1): mmApiKey auth, addToList (single and batch of
<= 100, one batch call in flight), addEvent, triggerCampaign, contacts/unsubscribe."""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable

from aiohttp import web

from streamproc.dev.sandbox.server import FakeApi, json_response

DEFAULT_API_KEY = "sandbox-mailmodo-key"
BATCH_PATH = "/addToList/batch"
MAX_BATCH_CONTACTS = 100
MAX_TS_SECONDS = 10**11  # larger values are milliseconds, not unix seconds
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# 207 body shape is not documented; `success` here is a guess kept in one place.
PARTIAL_SUCCESS_FLAG = False


def _bad_campaign_id(campaign_id: str) -> bool:
    return campaign_id.startswith("bad")


class MailmodoFake(FakeApi):
    """State: `contacts` {email: {email, lists, data, unsubscribed}}, `events`, `triggers`,
    `batch_violations` (concurrent addToList/batch calls seen)."""

    name = "mailmodo"
    base_path = "/api/v1"

    def __init__(self, api_key: str = DEFAULT_API_KEY,
                 known_campaigns: set[str] | Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        # None: any id not starting with "bad" exists; a set: exactly those ids exist.
        self.known_campaigns = known_campaigns
        self.reset_state()

    def reset_state(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.triggers: list[dict[str, Any]] = []
        self.unsubscribes: list[str] = []
        self.batch_violations = 0

    def add_routes(self, router: web.UrlDispatcher) -> None:
        p = self.base_path
        router.add_post(f"{p}/addToList", self._guard(self._add_to_list))
        router.add_post(f"{p}{BATCH_PATH}", self._guard(self._add_to_list_batch))
        router.add_post(f"{p}/addEvent", self._guard(self._add_event))
        router.add_post(p + "/triggerCampaign/{campaign_id}", self._guard(self._trigger_campaign))
        router.add_post(f"{p}/contacts/unsubscribe", self._guard(self._unsubscribe))

    def unauthorized(self) -> web.Response:
        return json_response({"success": False, "message": "Unauthorized: invalid mmApiKey"}, 401)

    def bad_json(self, message: str) -> web.Response:
        return _fail(message)

    def admit(self, path: str, in_flight: int, in_flight_on_path: int) -> web.Response | None:
        if path == BATCH_PATH and in_flight_on_path > 1:
            self.batch_violations += 1
            return json_response({"success": False, "message":
                                  "Another addToList/batch request is in progress"}, 429)
        return None

    def campaign_exists(self, campaign_id: str) -> bool:
        known = self.known_campaigns
        if known is None:
            return not _bad_campaign_id(campaign_id)
        return known(campaign_id) if callable(known) else campaign_id in known

    def _guard(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if request.headers.get("mmApiKey") != self.api_key:
                return self.unauthorized()
            body = self.json_body(request)
            if not isinstance(body, dict):
                return _fail("body must be a JSON object")
            with self.lock:
                return handler(request, body)
        return guarded

    def _upsert(self, email: str, list_name: str | None, data: dict[str, Any] | None) -> None:
        contact = self.contacts.setdefault(
            email, {"email": email, "lists": set(), "data": {}, "unsubscribed": False})
        if list_name:
            contact["lists"].add(list_name)
        contact["data"].update(data or {})

    def _add_to_list(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        email, list_name, data = body.get("email"), body.get("listName"), body.get("data")
        if not _is_email(email):
            return _fail("email is missing or invalid")
        if not isinstance(list_name, str) or not list_name:
            return _fail("listName is required")
        if data is not None and not isinstance(data, dict):
            return _fail("data must be an object")
        self._upsert(email, list_name, data)
        return json_response({"success": True, "message": "Contact added successfully"})

    def _add_to_list_batch(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        list_name, values = body.get("listName"), body.get("values")
        if not isinstance(list_name, str) or not list_name:
            return _fail("listName is required")
        if not isinstance(values, list) or not values:
            return _fail("values must be a non-empty array")
        if len(values) > MAX_BATCH_CONTACTS:
            return _fail(f"values can have at most {MAX_BATCH_CONTACTS} contacts")
        emails = [v.get("email") if isinstance(v, dict) else None for v in values]
        seen: set[str] = set()
        for email in emails:
            if isinstance(email, str) and email.lower() in seen:
                return _fail(f"duplicate email in values: {email}")
            if isinstance(email, str):
                seen.add(email.lower())
        errors = []
        for value, email in zip(values, emails):
            data = value.get("data") if isinstance(value, dict) else None
            if not _is_email(email):
                errors.append({"email": email, "reason": "Invalid email"})
            elif data is not None and not isinstance(data, dict):
                errors.append({"email": email, "reason": "data must be an object"})
            else:
                self._upsert(email, list_name, data)
        if errors:
            return json_response({"success": PARTIAL_SUCCESS_FLAG, "message":
                                  f"{len(values) - len(errors)} contacts added, {len(errors)} failed",
                                  "errors": errors}, 207)
        return json_response({"success": True, "message": f"{len(values)} contacts added"})

    def _add_event(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        email, event_name, ts = body.get("email"), body.get("event_name"), body.get("ts")
        props = body.get("event_properties", {})
        if not _is_email(email):
            return _fail("email is missing or invalid")
        if not isinstance(event_name, str) or not event_name:
            return _fail("event_name is required")
        if type(ts) is not int or not 0 <= ts < MAX_TS_SECONDS:
            return _fail("ts must be an integer unix timestamp in seconds")
        if not isinstance(props, dict):
            return _fail("event_properties must be an object")
        bad = [k for k, v in props.items() if not isinstance(v, (str, int, float))]
        if bad:
            return _fail(f"event_properties values must be string, number or boolean: {bad}")
        ref = str(uuid.uuid4())
        self.events.append({"email": email, "event_name": event_name, "ts": ts,
                            "event_properties": props, "ref": ref})
        return json_response({"success": True, "ref": ref})

    def _trigger_campaign(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        campaign_id = request.match_info["campaign_id"]
        email, data = body.get("email"), body.get("data")
        if not _is_email(email):
            return _fail("email is missing or invalid")
        if data is not None and not isinstance(data, dict):
            return _fail("data must be an object")
        if not self.campaign_exists(campaign_id):
            return json_response({"success": False, "message": f"Campaign {campaign_id} not found"})
        self._upsert(email, body.get("addToList") or None, data)
        ref = str(uuid.uuid4())
        self.triggers.append({"campaign_id": campaign_id, "email": email, "data": data,
                              "campaign_data": body.get("campaign_data"),
                              "subject": body.get("subject"), "addToList": body.get("addToList"),
                              "ref": ref})
        return json_response({"success": True, "message": "Campaign triggered", "ref": ref})

    def _unsubscribe(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        email = body.get("email")
        if not _is_email(email):
            return _fail("email is missing or invalid")
        self._upsert(email, None, None)
        self.contacts[email]["unsubscribed"] = True
        self.unsubscribes.append(email)
        return json_response({"success": True, "message": "Contact unsubscribed"})


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(EMAIL_RE.match(value))


def _fail(message: str, status: int = 400) -> web.Response:
    return json_response({"success": False, "message": message}, status)
