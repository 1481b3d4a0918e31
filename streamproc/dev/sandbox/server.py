"""Shared machinery of the sandbox APIs: the FakeApi base (request log, fault scripting, down
and latency modes, in-flight counting) and the helpers every fake uses. Running fakes:
streamproc/dev/sandbox/run.py."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson
from aiohttp import web

MAX_BODY_BYTES = 32 * 1024 * 1024  # above every vendor limit, so the fakes answer 400 not 413
SHUTDOWN_TIMEOUT_S = 0.25  # do not wait for handlers stuck in Fault.delay on stop


@dataclass
class RecordedRequest:
    """One request a fake received; `status` is None while it is still being answered."""

    method: str
    path: str  # relative to the fake's base path, e.g. "/addEvent"
    url_path: str  # full path as received, e.g. "/api/v1/addEvent"
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased; secrets kept so tests can assert auth
    raw: bytes
    body: Any  # parsed JSON, or None when the body was not JSON
    time: float  # time.time() on arrival
    status: int | None = None
    fault: str | None = None  # "status", "delay", "auth_reject", "down", ... when scripted


@dataclass(frozen=True)
class Fault:
    """A scripted answer, consumed by one matching request (see FakeApi.script)."""

    kind: str  # status | delay | auth_reject | disconnect | passthrough
    code: int = 0  # HTTP status, for kind "status"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def status(cls, code: int, body: Any = None, retry_after: float | str | None = None,
               headers: dict[str, str] | None = None) -> "Fault":
        """Answer `code` with `body` (JSON, or str/bytes as is) and optional Retry-After."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        return cls("status", code=code, body=body, headers=extra)

    @classmethod
    def delay(cls, seconds: float) -> "Fault":
        """Sleep, then answer normally (use it to trigger client timeouts)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def auth_reject(cls) -> "Fault":
        """Answer as the vendor does for bad credentials (its own 401 body)."""
        return cls("auth_reject")

    @classmethod
    def disconnect(cls) -> "Fault":
        """Close the connection without answering (a network error for the client)."""
        return cls("disconnect")

    @classmethod
    def passthrough(cls) -> "Fault":
        """Let this request through untouched (a gap in a script)."""
        return cls("passthrough")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def basic_auth(request: web.Request) -> tuple[str, str] | None:
    """(user, password) from an HTTP Basic Authorization header, None when absent/garbled."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except ValueError:
        return None
    return (user, password) if sep else None


RECORD_KEY = web.RequestKey("sandbox_record", RecordedRequest)


class BadJson(Exception):
    """The request body is not the JSON the endpoint needs."""


class FakeApi:
    """Base of one vendor fake: subclasses set `name`/`base_path` and add routes. While running,
    `base_url` is the fake's scheme://host:port (what STREAMPROC_<NAME>_BASE_URL takes: the
    client adds the API path) and `api_url` is base_url + base_path (the vendor's API root)."""

    name = "fake"
    base_path = ""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # guards the log, scripts, counters and vendor state
        self.down = False  # answer 503 to everything
        self.latency = 0.0  # seconds added to every answer
        self.log_limit: int | None = None  # keep only the newest N requests (long demo runs)
        self.base_url: str | None = None  # http://host:port while running
        self._log: list[RecordedRequest] = []
        self._scripts: list[tuple[str, str | None, deque[Fault]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._in_flight_by_path: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._handler_tasks: set[asyncio.Task[Any]] = set()

    @property
    def api_url(self) -> str | None:
        """The vendor's API root while running: base_url + base_path (e.g. .../api/v1)."""
        return None if self.base_url is None else self.base_url + self.base_path

    # ---- for subclasses -------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def unauthorized(self) -> web.Response:
        return json_response({"message": "Unauthorized"}, 401)

    def admit(self, path: str, in_flight: int, in_flight_on_path: int) -> web.Response | None:
        """Concurrency rule checked on arrival; return a response to refuse the request."""
        return None

    def reset_state(self) -> None:
        """Forget vendor state (contacts, events, ...)."""

    @staticmethod
    def json_body(request: web.Request) -> Any:
        body = request[RECORD_KEY].body
        if body is None:
            raise BadJson("body is not valid JSON")
        return body

    # ---- for tests ------------------------------------------------------------------------
    def script(self, path: str, faults: Iterable[Fault], method: str | None = None) -> None:
        """Queue faults for requests on `path` ("/addEvent", "/contactslist/*" or "*")."""
        with self.lock:
            self._scripts.append((path, method.upper() if method else None, deque(faults)))

    def pending_faults(self) -> int:
        with self.lock:
            return sum(len(q) for _, _, q in self._scripts)

    def requests(self, path: str | None = None, method: str | None = None,
                 status: int | None = None) -> list[RecordedRequest]:
        """Recorded requests, oldest first, optionally filtered (path patterns as in script)."""
        with self.lock:
            return [r for r in self._log
                    if (path is None or _path_matches(path, r.path))
                    and (method is None or r.method == method.upper())
                    and (status is None or r.status == status)]

    def clear(self) -> None:
        """Forget recorded requests."""
        with self.lock:
            self._log.clear()

    def reset(self) -> None:
        """Back to a fresh fake: log, scripts, modes, counters and vendor state."""
        with self.lock:
            self._log.clear()
            self._scripts.clear()
            self.down, self.latency = False, 0.0
            self.max_in_flight = self.in_flight
            self.reset_state()

    # ---- machinery ------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        self.add_routes(app.router)
        return app

    def _next_fault(self, path: str, method: str) -> Fault | None:
        with self.lock:
            for pattern, want_method, queue in self._scripts:
                if queue and _path_matches(pattern, path) and want_method in (None, method):
                    fault = queue.popleft()
                    self._scripts = [entry for entry in self._scripts if entry[2]]
                    return fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        path = request.path[len(self.base_path):] if request.path.startswith(self.base_path) else request.path
        record = RecordedRequest(request.method, path, request.path, dict(request.query),
                                 {k.lower(): v for k, v in request.headers.items()}, raw, body, time.time())
        request[RECORD_KEY] = record
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
        with self.lock:
            self._log.append(record)
            if self.log_limit is not None and len(self._log) > self.log_limit:
                del self._log[: len(self._log) - self.log_limit]
            self.in_flight += 1
            self._in_flight_by_path[path] += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            refusal = self.admit(path, self.in_flight, self._in_flight_by_path[path])
        try:
            response = await self._answer(request, handler, record, refusal)
            record.status = response.status
            return response
        finally:
            self._handler_tasks.discard(task)  # type: ignore[arg-type]
            with self.lock:
                self.in_flight -= 1
                self._in_flight_by_path[path] -= 1

    async def _answer(self, request: web.Request, handler: Any, record: RecordedRequest,
                      refusal: web.Response | None) -> web.StreamResponse:
        if self.down:
            record.fault = "down"
            return json_response({"message": "Service Unavailable (sandbox down mode)"}, 503)
        if refusal is not None:
            return refusal
        fault = self._next_fault(record.path, record.method)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind != "passthrough":
            record.fault = fault.kind
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "auth_reject":
                return self.unauthorized()
            elif fault.kind == "disconnect":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=499)  # never reaches the client
            elif fault.kind == "status":
                body = fault.body if fault.body is not None else {"message": f"sandbox fault {fault.code}"}
                if isinstance(body, (str, bytes)):
                    return web.Response(body=body, status=fault.code, headers=fault.headers)
                return json_response(body, fault.code, fault.headers)
        try:
            return await handler(request)
        except BadJson as exc:
            return self.bad_json(str(exc))

    def bad_json(self, message: str) -> web.Response:
        return json_response({"message": message}, 400)


def _path_matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern
