"""Sandbox Mailjet REST API (base path /v3/REST): Basic auth (key, secret), /contactmetadata
(property definitions) and /contactslist/{id}/managecontact, with Mailjet's error bodies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from streamproc.dev.sandbox.server import FakeApi, basic_auth, json_response

DEFAULT_API_KEY = "sandbox-mailjet-key"
DEFAULT_API_SECRET = "sandbox-mailjet-secret"
DEFAULT_LIST_ID = "10001"
ACTIONS = ("addforce", "addnoforce", "remove", "unsub")
DATA_TYPES = ("str", "int", "float", "bool", "datetime")
NAMESPACES = ("static", "historic")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Mailjet's wording (mailjet/api-documentation, managecontact "Error response"):
PROPERTIES_INVALID = "Object properties invalid"
PROPERTY_NOT_DEFINED = "Property not defined"
PROPERTY_TYPE_MISMATCH = "Property type does not match definition"
OBJECT_NOT_FOUND = "Object not found"
AUTH_FAILURE = ("API key authentication/authorization failure. You may be unauthorized to access "
                "the API or your API key may be expired. Visit API keys management section to "
                "check your keys.")


def mailjet_error(status: int, message: str, info: Any = "") -> web.Response:
    """Mailjet v3 REST error body: {"ErrorInfo", "ErrorMessage", "StatusCode"}."""
    return json_response({"ErrorInfo": info, "ErrorMessage": message, "StatusCode": status}, status)


class MailjetFake(FakeApi):
    """State: `metadata` {name: {ID, Name, DataType, NameSpace}}, `contacts` {email: {ContactID,
    Email, Name, Properties, Lists: {list_id: "subscribed"|"unsubscribed"}}}, `operations`."""

    name = "mailjet"
    base_path = "/v3/REST"

    def __init__(self, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET,
                 list_ids: tuple[str, ...] | set[str] = (DEFAULT_LIST_ID,)) -> None:
        super().__init__()
        self.api_key, self.api_secret = api_key, api_secret
        self.list_ids = {str(i) for i in list_ids}
        self.reset_state()

    def reset_state(self) -> None:
        self.metadata: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.operations: list[dict[str, Any]] = []  # accepted managecontact bodies + list id

    def define_property(self, name: str, data_type: str = "str", namespace: str = "static") -> None:
        """Pre-define a contact property, as if done in the Mailjet UI."""
        with self.lock:
            self.metadata[name] = {"ID": len(self.metadata) + 1, "Name": name,
                                   "DataType": data_type, "NameSpace": namespace}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        p = self.base_path
        router.add_post(f"{p}/contactmetadata", self._guard(self._create_metadata))
        router.add_get(f"{p}/contactmetadata", self._guard(self._list_metadata))
        router.add_post(p + "/contactslist/{list_id}/managecontact", self._guard(self._manage_contact))

    def unauthorized(self) -> web.Response:
        return mailjet_error(401, AUTH_FAILURE)

    def bad_json(self, message: str) -> web.Response:
        return mailjet_error(400, f"Invalid json input: {message}")

    def _guard(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if basic_auth(request) != (self.api_key, self.api_secret):
                return self.unauthorized()
            body = self.json_body(request) if request.method == "POST" else {}
            if not isinstance(body, dict):
                return self.bad_json("expected a JSON object")
            with self.lock:
                return handler(request, _keys_case_insensitive(body))
        return guarded

    def _list_metadata(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        data = list(self.metadata.values())
        return json_response({"Count": len(data), "Data": data, "Total": len(data)})

    def _create_metadata(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        name, data_type = body.get("name"), body.get("datatype")
        namespace = body.get("namespace", "static")
        problems = {}
        if not isinstance(name, str) or not name:
            problems["Name"] = "MJ08 Property Name is invalid: MJ03 A non-empty value is required"
        if data_type not in DATA_TYPES:
            problems["Datatype"] = f"MJ08 Property Datatype is invalid: must be one of {'|'.join(DATA_TYPES)}"
        if namespace not in NAMESPACES:
            problems["NameSpace"] = "MJ08 Property NameSpace is invalid"
        if problems:
            return mailjet_error(400, PROPERTIES_INVALID, problems)
        if name in self.metadata:
            return mailjet_error(400, f'MJ18 A ContactMetaData resource with value "{name}" for Name already exists.')
        self.define_property(name, data_type, namespace)
        return json_response({"Count": 1, "Data": [self.metadata[name]], "Total": 1}, 201)

    def _manage_contact(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        list_id = request.match_info["list_id"]
        if list_id not in self.list_ids:
            return mailjet_error(404, OBJECT_NOT_FOUND)
        email, action = body.get("email"), body.get("action")
        name, properties = body.get("name", ""), body.get("properties") or {}
        problems: dict[str, Any] = {}
        if not isinstance(email, str) or not EMAIL_RE.match(email):
            problems["Email"] = "MJ08 Property Email is invalid: MJ03 A valid email is required"
        if action not in ACTIONS:
            problems["Action"] = f"Invalid action: {action if isinstance(action, str) else ''}"
        if not isinstance(properties, dict):
            problems["Properties"] = "Properties must be an object"
        else:
            bad = [{key: self._property_problem(key, value)} for key, value in properties.items()
                   if self._property_problem(key, value)]
            if bad:
                problems["Properties"] = bad
        if problems:
            return mailjet_error(400, PROPERTIES_INVALID, problems)
        contact = self._apply(list_id, email, name or "", action, properties)
        return json_response({"Count": 1, "Data": [{
            "ContactID": contact["ContactID"], "Email": email, "Action": action,
            "Name": name or "", "Properties": properties}], "Total": 1}, 201)

    def _property_problem(self, key: str, value: Any) -> str | None:
        definition = self.metadata.get(key)
        if definition is None:
            return PROPERTY_NOT_DEFINED
        return None if _matches_type(value, definition["DataType"]) else PROPERTY_TYPE_MISMATCH

    def _apply(self, list_id: str, email: str, name: str, action: str,
               properties: dict[str, Any]) -> dict[str, Any]:
        key = email.lower()
        contact = self.contacts.setdefault(key, {
            "ContactID": 1000 + len(self.contacts), "Email": email, "Name": "",
            "Properties": {}, "Lists": {}})
        if name:
            contact["Name"] = name
        contact["Properties"].update(properties)
        lists = contact["Lists"]
        if action == "addforce":
            lists[list_id] = "subscribed"
        elif action == "addnoforce":
            lists.setdefault(list_id, "subscribed")
        elif action == "remove":
            lists.pop(list_id, None)
        else:
            lists[list_id] = "unsubscribed"
        self.operations.append({"list_id": list_id, "Email": email, "Action": action,
                                "Name": name, "Properties": properties})
        return contact


def _keys_case_insensitive(body: dict[str, Any]) -> dict[str, Any]:
    """Mailjet accepts "Email"/"email"; top-level keys are looked up lower-cased."""
    return {str(k).lower(): v for k, v in body.items()}


def _matches_type(value: Any, data_type: str) -> bool:
    if value is None:
        return True  # clears the property
    if data_type == "str":
        return isinstance(value, str)
    if data_type == "bool":
        return isinstance(value, bool)
    if data_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if data_type == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, str):  # datetime: ISO-8601 / RFC 3339 text
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
        except ValueError:
            return False
    return False
