"""Ingest endpoints on the worker's web server (faust web, aiohttp): a Segment-compatible
collector (streamproc/http/ingest/segment.py) and the Mailmodo, Mailjet and CleverTap webhooks
(streamproc/http/ingest/webhooks.py). This module holds what they share (auth parsing, bounded
body reading, the Kafka write, the error-to-JSON wrapper); routes.py registers the pages.

Decisions (the README section "Ingest endpoints" documents them for operators):
- An endpoint answers 2xx only after the broker acknowledged every record it wrote
  (OutputProducer.send_all, acks=all). If the broker does not acknowledge within
  SEND_TIMEOUT_S the answer is 503 with Retry-After, and the caller retries (Segment
  libraries retry 5xx, Mailjet retries anything but 200, CleverTap retries twice). A write
  cut short by the timeout may still land, so a retry can duplicate: at-least-once.
- No endpoint is open by default: no write key / webhook token configured -> 401 always.
  Secrets are compared with hmac.compare_digest against every candidate.
- Bodies are read in chunks and never beyond the limit. aiohttp already inflates
  `Content-Encoding: gzip|deflate` bodies; a gzip body that reaches us still compressed is
  inflated here, also bounded. A body that cannot be inflated is 400.
- Every error is JSON: {"success": false, "code": ..., "error": msg, "message": msg}
  (`code`/`message` because analytics-python reads those two keys). Any unexpected
  exception is logged and answered 500; it never reaches the worker.
- Every request is counted in streamproc_ingest_requests_total{endpoint, status}.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from aiohttp.web import RequestPayloadError
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0  # broker acknowledgement wait before answering 503
RETRY_AFTER_S = 5
READ_CHUNK = 64 * 1024

# (topic, key, value, headers)
Record = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


class IngestError(Exception):
    """A request is refused: answered with `status` and a JSON error body."""

    def __init__(self, status: int, code: str, message: str,
                 extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                 ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = extra or {}
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"success": False, "code": self.code, "error": self.message,
                "message": self.message, **self.extra}


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = field(default=None)


# --------------------------------------------------------------------------- pure helpers


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic ...` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, _, password = decoded.partition(":")
    return user, password


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def secret_matches(candidate: str | None, accepted: tuple[str, ...] | list[str]) -> bool:
    """Constant-time comparison against every accepted secret (no early exit)."""
    if not candidate:
        return False
    cand = candidate.encode("utf-8")
    ok = False
    for secret in accepted:
        if secret:
            ok |= hmac.compare_digest(cand, secret.encode("utf-8"))
    return ok


def webhook_authorized(authorization: str | None, query_token: str | None,
                       configured: str) -> bool:
    """The webhook token as `Bearer <token>`, as the Basic password (any username), or as
    the `token` query parameter. An empty configured token authorises nothing."""
    if not configured:
        return False
    basic = basic_credentials(authorization)
    candidates = (bearer_token(authorization), basic[1] if basic else None, query_token)
    ok = False
    for c in candidates:
        ok |= secret_matches(c, (configured,))
    return ok


def inflate(data: bytes, content_encoding: str | None, limit: int, *,
            status: int = 413, code: str = "payload_too_large") -> bytes:
    """A gzip body aiohttp did not inflate (still starts with the gzip magic) is inflated
    here, never beyond `limit` bytes (IngestError(status) beyond; 400 if corrupt)."""
    enc = (content_encoding or "").strip().lower()
    if enc not in ("gzip", "x-gzip") or not data.startswith(b"\x1f\x8b"):
        return data
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise IngestError(400, "bad_encoding", f"the gzip body could not be inflated: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise IngestError(status, code, f"the body exceeds the {limit} byte limit")
    return out


def normalised_email(value: Any) -> bytes | None:
    """A Kafka key from an email field: trimmed, lowercased; None when not a string."""
    if isinstance(value, str) and value.strip():
        return value.strip().lower().encode("utf-8")
    return None


def utc_now_iso() -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. 2026-01-02T03:04:05.678Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- request I/O


async def read_body(request: Request, limit: int, *, status: int = 413,
                    code: str = "payload_too_large") -> bytes:
    """The (inflated) body, read in chunks; IngestError(status) as soon as it passes `limit`."""
    too_big = IngestError(status, code, f"the body exceeds the {limit} byte limit",
                          headers={"Connection": "close"})  # aiohttp drains the rest first
    length = request.content_length
    if length is not None and length > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = await request.content.read(READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except RequestPayloadError as e:
        # aiohttp would re-raise the stored error while draining the body after our answer
        # (logged as unhandled, connection reset): mark the body finished, close after.
        try:
            request.content.feed_eof()
        except Exception:  # pragma: no cover - best effort
            pass
        reason = " ".join(str(e).split())
        raise IngestError(400, "bad_body", f"the body could not be read or decoded: {reason}",
                          headers={"Connection": "close"}) from None
    return inflate(b"".join(chunks), request.headers.get("Content-Encoding"), limit,
                   status=status, code=code)


async def write(rt: Runtime, records: list[Record]) -> None:
    """Write and wait for the broker's acknowledgement (503 after SEND_TIMEOUT_S)."""
    if not records:
        return
    if rt.output.producer is None:
        raise IngestError(503, "not_ready", "the Kafka producer is not started yet",
                          headers={"Retry-After": str(RETRY_AFTER_S)})
    try:
        await asyncio.wait_for(rt.output.send_all(records), SEND_TIMEOUT_S)
    except Exception as e:  # TimeoutError included
        log.warning("ingest: writing %d records to %s failed: %r", len(records),
                    records[0][0], e)
        raise IngestError(503, "broker_unavailable",
                          "the records were not acknowledged by Kafka; retry later",
                          headers={"Retry-After": str(RETRY_AFTER_S)}) from None


Handler = Callable[..., Awaitable[Reply]]


async def respond(view: View, rt: Runtime, endpoint: str, handler: Handler, request: Request,
                  match: dict[str, Any]) -> Response:
    """Run a handler; turn IngestError and any crash into JSON; count the request."""
    try:
        reply = await handler(rt, request, **match)
    except IngestError as e:
        if e.status >= 500:
            log.warning("ingest %s: %d %s", endpoint, e.status, e.code)
        else:
            log.debug("ingest %s: %d %s: %s", endpoint, e.status, e.code, e.message)
        reply = Reply(e.status, e.body(), e.headers)
    except Exception:
        log.exception("ingest %s: unexpected error", endpoint)
        reply = Reply(500, IngestError(500, "internal_error", "internal error").body())
    try:
        rt.metrics.ingest_requests.labels(endpoint, str(reply.status)).inc()
    except Exception:  # metrics must never fail a request
        log.exception("ingest: counting the request failed")
    return view.bytes(orjson.dumps(reply.body), content_type="application/json",
                      status=reply.status, headers=reply.headers)


def add_route(rt: Runtime, path: str, endpoint: str, handler: Handler) -> None:
    """POST `path` -> handler(rt, request, **path_params), counted as `endpoint`."""

    class IngestView(View):
        async def post(self, request: Request, **match: Any) -> Response:
            return await respond(self, rt, endpoint, handler, request, dict(match))

    IngestView.__name__ = IngestView.__qualname__ = "Ingest" + re.sub(r"\W+", "_", path)
    rt.app.page(path, name=f"ingest:{path}")(IngestView)
