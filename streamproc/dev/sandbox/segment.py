"""Sandbox Segment HTTP Tracking API (base path ""): Basic auth with the write key, /v1/batch
and single-message endpoints, 32 KB / 500 KB / 2,500-message limits, messageId dedupe."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from streamproc.dev.sandbox.server import RECORD_KEY, FakeApi, basic_auth, json_response

DEFAULT_WRITE_KEY = "sandbox-write-key"
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
MAX_MESSAGE_ID_CHARS = 100
MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
REQUIRED_BY_TYPE = {"track": "event", "group": "groupId", "alias": "previousId"}


class SegmentFake(FakeApi):
    """State: `messages` (accepted, deduplicated, in arrival order), `duplicates` (count of
    messages whose messageId was already accepted)."""

    name = "segment"
    base_path = ""

    def __init__(self, write_key: str = DEFAULT_WRITE_KEY) -> None:
        super().__init__()
        self.write_key = write_key
        self.reset_state()

    def reset_state(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.message_ids: set[str] = set()
        self.duplicates = 0

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/batch", self._batch)
        for kind in MESSAGE_TYPES:
            router.add_post(f"/v1/{kind}", self._single)

    def unauthorized(self) -> web.Response:
        return json_response({"success": False, "message": "Invalid write key"}, 401)

    def bad_json(self, message: str) -> web.Response:
        return _invalid(message)

    def messages_of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m.get("type") == kind]

    def _authorized(self, request: web.Request) -> bool:
        return basic_auth(request) == (self.write_key, "")

    async def _batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self.unauthorized()
        if len(request[RECORD_KEY].raw) > MAX_BATCH_BYTES:
            return _invalid(f"batch exceeds {MAX_BATCH_BYTES} bytes")
        body = self.json_body(request)
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not batch:
            return _invalid("body must be {\"batch\": [messages]}")
        if len(batch) > MAX_BATCH_MESSAGES:
            return _invalid(f"batch has {len(batch)} messages, at most {MAX_BATCH_MESSAGES}")
        for index, message in enumerate(batch):
            problem = _message_problem(message)
            if problem:
                return _invalid(f"batch[{index}]: {problem}")
        self._accept(batch)
        return json_response({"success": True})

    async def _single(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self.unauthorized()
        body = self.json_body(request)
        if not isinstance(body, dict):
            return _invalid("body must be a JSON object")
        kind = request.path.rsplit("/", 1)[-1]
        if body.get("type", kind) != kind:
            return _invalid(f"type {body.get('type')!r} posted to /v1/{kind}")
        message = {**body, "type": kind}
        problem = _message_problem(message)
        if problem:
            return _invalid(problem)
        self._accept([message])
        return json_response({"success": True})

    def _accept(self, messages: list[dict[str, Any]]) -> None:
        with self.lock:
            for message in messages:
                if message["messageId"] in self.message_ids:
                    self.duplicates += 1
                    continue
                self.message_ids.add(message["messageId"])
                self.messages.append(message)


def _message_problem(message: Any) -> str | None:
    """Why Segment would reject this message, or None."""
    if not isinstance(message, dict):
        return "message must be an object"
    if len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
        return f"message exceeds {MAX_MESSAGE_BYTES} bytes"
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        return f"type must be one of {', '.join(MESSAGE_TYPES)}"
    if not (_non_empty_id(message.get("userId")) or _non_empty_id(message.get("anonymousId"))):
        return "userId or anonymousId is required"
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return "messageId is required"
    if len(message_id) > MAX_MESSAGE_ID_CHARS:
        return f"messageId longer than {MAX_MESSAGE_ID_CHARS} characters"
    required = REQUIRED_BY_TYPE.get(kind)
    if required and not message.get(required):
        return f"{kind} needs {required}"
    return None


def _non_empty_id(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (isinstance(value, int) and not isinstance(value, bool))


def _invalid(message: str) -> web.Response:
    return json_response({"success": False, "message": message}, 400)
