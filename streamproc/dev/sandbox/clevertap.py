"""Sandbox CleverTap upload API (base path ""): POST /1/upload with account/passcode headers,
<= 1,000 records, per-record codes 509/523/525/526, at most 15 requests in flight."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streamproc.dev.sandbox.server import FakeApi, json_response

DEFAULT_ACCOUNT_ID = "SANDBOX-ACCOUNT"
DEFAULT_PASSCODE = "sandbox-passcode"
UPLOAD_PATH = "/1/upload"
MAX_RECORDS = 1000
MAX_CONCURRENT_REQUESTS = 15
MAX_TS_SECONDS = 10**11  # larger values are milliseconds, not unix seconds
IDENTITY_KEYS = ("objectId", "identity", "FBID", "GPID")
RECORD_TYPES = ("event", "profile")
INVALID_CREDENTIALS = {"status": "fail", "error": "Invalid Credentials", "code": 401}

CODE_EVENT_NAME_MISSING = 509
CODE_IDENTITY_MISSING = 523
CODE_BAD_TIMESTAMP = 525
CODE_BAD_OBJECT_ID = 526
CODE_BAD_RECORD = 512  # (unconfirmed) record shape/type not understood


class CleverTapFake(FakeApi):
    """State: `records` (processed, arrival order), `rejected` (unprocessed entries),
    `concurrency_rejections`; `max_in_flight` is the highest concurrency a client reached."""

    name = "clevertap"
    base_path = ""

    def __init__(self, account_id: str = DEFAULT_ACCOUNT_ID, passcode: str = DEFAULT_PASSCODE,
                 max_concurrent: int = MAX_CONCURRENT_REQUESTS) -> None:
        super().__init__()
        self.account_id, self.passcode = account_id, passcode
        self.max_concurrent = max_concurrent
        self.reset_state()

    def reset_state(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.concurrency_rejections = 0

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if r.get("type") == "event"]

    @property
    def profiles(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if r.get("type") == "profile"]

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(UPLOAD_PATH, self._upload)

    def unauthorized(self) -> web.Response:
        return json_response(INVALID_CREDENTIALS, 401)

    def bad_json(self, message: str) -> web.Response:
        return _fail(message)

    def admit(self, path: str, in_flight: int, in_flight_on_path: int) -> web.Response | None:
        if in_flight > self.max_concurrent:
            self.concurrency_rejections += 1  # 429 on purpose without Retry-After, as CleverTap
            return json_response({"status": "fail", "error": "Too many concurrent requests",
                                  "code": 429}, 429)
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        headers = request.headers
        if (headers.get("X-CleverTap-Account-Id") != self.account_id
                or headers.get("X-CleverTap-Passcode") != self.passcode):
            return self.unauthorized()
        if request.content_type != "application/json":
            return _fail("Content-Type must be application/json")
        body = self.json_body(request)
        records = body.get("d") if isinstance(body, dict) else None
        if not isinstance(records, list):
            return _fail('body must be {"d": [records]}')
        if len(records) > MAX_RECORDS:
            return _fail(f"{len(records)} records in one request, at most {MAX_RECORDS}")
        unprocessed = []
        with self.lock:
            for record in records:
                problem = _record_problem(record)
                if problem:
                    code, error = problem
                    unprocessed.append({"status": "fail", "code": code, "error": error,
                                        "record": record})
                else:
                    self.records.append(record)
            self.rejected.extend(unprocessed)
        processed = len(records) - len(unprocessed)
        status = "success" if not unprocessed else "partial" if processed else "fail"
        return json_response({"status": status, "processed": processed, "unprocessed": unprocessed})


def _record_problem(record: Any) -> tuple[int, str] | None:
    """(code, error) CleverTap would report for this record, or None when it is accepted."""
    if not isinstance(record, dict) or record.get("type") not in RECORD_TYPES:
        return CODE_BAD_RECORD, "Record type must be event or profile"
    if record["type"] == "event" and not (isinstance(record.get("evtName"), str) and record["evtName"]):
        return CODE_EVENT_NAME_MISSING, "Event name is missing"
    identities = [k for k in IDENTITY_KEYS if record.get(k) not in (None, "")]
    if not identities:
        return CODE_IDENTITY_MISSING, "Record does not have an identity"
    if "objectId" in identities and not isinstance(record["objectId"], str):
        return CODE_BAD_OBJECT_ID, "Invalid objectId"
    ts = record.get("ts")
    if type(ts) is not int or not 0 <= ts < MAX_TS_SECONDS:
        return CODE_BAD_TIMESTAMP, "Invalid timestamp: ts must be an integer in unix seconds"
    return None


def _fail(message: str, status: int = 400) -> web.Response:
    return json_response({"status": "fail", "error": message, "code": status}, status)
