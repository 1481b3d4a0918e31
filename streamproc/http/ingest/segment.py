"""Segment-compatible collector: POST /v1/identify|track|page|screen|group|alias (one message,
its `type` set from the path), POST /v1/batch and /v1/import (the same as batch). Every
message goes to the segment raw topic, keyed by userId, else anonymousId.

Auth: the write key as the HTTP Basic username (password ignored; Segment's is empty) or as
`writeKey` in the JSON body. Accepted keys: STREAMPROC_INGEST_SEGMENT_WRITE_KEYS; none
configured -> every request is 401. A key in the Authorization header must itself be valid
(a body key does not rescue a wrong header). `writeKey` is never written to Kafka.

Limits (Segment's own): 32 KB (32768 bytes, compact JSON) per message, 500 KB (512000 bytes,
after inflating gzip) per request, 2,500 messages per batch -> 400 with a JSON error.
STREAMPROC_INGEST_MAX_BODY_BYTES, when set below 500 KB, also applies -> 413 above it.

Each written message: `messageId` filled with a uuid4 when missing; `receivedAt` stamped
(ISO-8601 UTC, ms, Z; a client value is overwritten, as Segment does); the batch-level
`context` and `integrations` merged under the message's own keys (the message wins) and the
batch `sentAt` copied to messages without one.

Partial batches (decision): messages are checked one by one: not an object (`not_object`),
`type` missing or not identify/track/page/screen/group/alias (`bad_type`), no userId or
anonymousId (`missing_id`), over 32 KB (`oversize`). The valid ones are written; with at
least one valid the answer is 200 {"success": true}, plus "errors": [{"index", "reason",
"message"}] when some were refused (Segment clients only look at the status, so they do not
retry the good ones). With none valid: 400 with the same "errors" and nothing written. A
single call with an invalid message is 400. Deeper checks (track without `event`, alias
without `previousId`, timestamps) stay with the ingest agent, which dead-letters them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from streamproc.core.errors import EventError
from streamproc.core.events.common import json_type, loads_json
from streamproc.http.ingest.common import (
    IngestError,
    Reply,
    add_route,
    basic_credentials,
    read_body,
    secret_matches,
    utc_now_iso,
    write,
)

if TYPE_CHECKING:
    from faust.web import Request

    from streamproc.worker.context import Runtime

SEGMENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500


class MessageError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _id(v: Any) -> str | None:
    if isinstance(v, str) and v.strip():
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def message_key(msg: dict[str, Any]) -> bytes:
    """The Kafka key: userId, else anonymousId (MessageError `missing_id` without both)."""
    key = _id(msg.get("userId")) or _id(msg.get("anonymousId"))
    if key is None:
        raise MessageError("missing_id", "the message has no userId or anonymousId")
    return key.encode("utf-8")


def prepare_message(msg: Any, *, received_at: str, kind: str | None = None,
                    defaults: dict[str, Any] | None = None) -> tuple[bytes, bytes]:
    """Validate and complete one message -> (key, JSON value). `kind` (single calls) sets the
    type; `defaults` are the batch's context/integrations/sentAt. Raises MessageError."""
    if not isinstance(msg, dict):
        raise MessageError("not_object", f"a message must be a JSON object, got {json_type(msg)}")
    msg = dict(msg)
    msg.pop("writeKey", None)
    size = len(orjson.dumps(msg))
    if size > MAX_MESSAGE_BYTES:
        raise MessageError("oversize", f"the message is {size} bytes; the limit is "
                                       f"{MAX_MESSAGE_BYTES} bytes (32 KB)")
    if kind is not None:
        msg["type"] = kind
    elif msg.get("type") not in SEGMENT_TYPES:
        got = msg.get("type")
        shown = repr(got[:40]) if isinstance(got, str) else json_type(got)
        raise MessageError("bad_type", f"type must be one of {', '.join(SEGMENT_TYPES)}, "
                                       f"got {shown}")
    key = message_key(msg)
    for name in ("context", "integrations"):
        base = (defaults or {}).get(name)
        if isinstance(base, dict) and base:
            own = msg.get(name)
            if own is None:
                msg[name] = dict(base)
            elif isinstance(own, dict):
                msg[name] = {**base, **own}
    sent_at = (defaults or {}).get("sentAt")
    if sent_at is not None and msg.get("sentAt") is None:
        msg["sentAt"] = sent_at
    if not _id(msg.get("messageId")):
        msg["messageId"] = str(uuid.uuid4())
    msg["receivedAt"] = received_at
    return key, orjson.dumps(msg)


def split_batch(body: dict[str, Any], *, received_at: str,
                ) -> tuple[list[tuple[bytes, bytes]], list[dict[str, Any]]]:
    """A batch body -> ([(key, value)] to write, [{"index", "reason", "message"}] refused).
    Raises IngestError(400) when `batch` is not a non-empty array of at most 2,500."""
    batch = body.get("batch")
    if not isinstance(batch, list) or not batch:
        raise IngestError(400, "bad_batch", "`batch` must be a non-empty array of messages")
    if len(batch) > MAX_BATCH_MESSAGES:
        raise IngestError(400, "too_many_messages",
                          f"{len(batch)} messages; a batch holds at most {MAX_BATCH_MESSAGES}")
    defaults = {k: body[k] for k in ("context", "integrations", "sentAt") if k in body}
    good: list[tuple[bytes, bytes]] = []
    errors: list[dict[str, Any]] = []
    for i, msg in enumerate(batch):
        try:
            good.append(prepare_message(msg, received_at=received_at, defaults=defaults))
        except MessageError as e:
            errors.append({"index": i, "reason": e.reason, "message": e.message})
    return good, errors


def _unauthorized(why: str) -> IngestError:
    return IngestError(401, "unauthorized", why, headers={"WWW-Authenticate": 'Basic realm="segment"'})


async def handle(rt: Runtime, request: Request, *, kind: str | None) -> Reply:
    ing = rt.settings.ingest
    keys = ing.segment_write_keys
    if not keys:
        raise _unauthorized("no write key is configured (STREAMPROC_INGEST_SEGMENT_WRITE_KEYS)")
    basic = basic_credentials(request.headers.get("Authorization"))
    header_key = basic[0] if basic else None
    if header_key is not None and not secret_matches(header_key, keys):
        raise _unauthorized("invalid write key")
    raw = await read_body(request, MAX_REQUEST_BYTES, status=400, code="payload_too_large")
    if len(raw) > ing.max_body_bytes:
        raise IngestError(413, "payload_too_large",
                          f"the body exceeds the {ing.max_body_bytes} byte limit")
    try:
        body = loads_json(raw)
        if not isinstance(body, dict):
            raise EventError("not_object", f"the body must be a JSON object, got {json_type(body)}")
    except EventError as e:
        if header_key is None:  # nothing to authenticate with
            raise _unauthorized("missing write key") from None
        raise IngestError(400, e.reason, e.message) from None
    body_key = body.pop("writeKey", None)
    if header_key is None and not secret_matches(body_key if isinstance(body_key, str) else None,
                                                 keys):
        raise _unauthorized("missing or invalid write key")
    received_at = utc_now_iso()
    topic = rt.topology.inputs["segment"].name
    if kind is not None:
        try:
            key, value = prepare_message(body, received_at=received_at, kind=kind)
        except MessageError as e:
            raise IngestError(400, e.reason, e.message) from None
        await write(rt, [(topic, key, value, [])])
        return Reply(200, {"success": True})
    good, errors = split_batch(body, received_at=received_at)
    if not good:
        raise IngestError(400, "no_valid_message", "no message in the batch is valid",
                          extra={"errors": errors})
    await write(rt, [(topic, k, v, []) for k, v in good])
    return Reply(200, {"success": True, "errors": errors} if errors else {"success": True})


def register(rt: Runtime) -> None:
    for kind in SEGMENT_TYPES:
        async def single(rt: Runtime, request: Request, _kind: str = kind) -> Reply:
            return await handle(rt, request, kind=_kind)
        add_route(rt, f"/v1/{kind}", f"segment.{kind}", single)

    async def batch(rt: Runtime, request: Request) -> Reply:
        return await handle(rt, request, kind=None)

    add_route(rt, "/v1/batch", "segment.batch", batch)
    add_route(rt, "/v1/import", "segment.import", batch)
