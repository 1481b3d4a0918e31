"""Test doubles for the delivery engine: a fake clock/sleep, a tiny fake destination module and
a scripted fake API behind httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Callable

import httpx

from streamproc.config.settings import DeliverySettings
from streamproc.core.errors import AuthError, Permanent, Retryable, Throttled
from streamproc.core.metrics import Metrics
from streamproc.core.records import SinkRecord
from streamproc.delivery.client import build_client
from streamproc.delivery.engine import Deliverer
from streamproc.delivery.ledger import InMemoryLedger
from streamproc.destinations.request import HttpRequest, RecordOutcome

WALL_OFFSET = 1_700_000_000.0


class FakeClock:
    """monotonic clock + sleep that only advances time; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_OFFSET + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        await asyncio.sleep(0)


@dataclass(frozen=True)
class FakeSettings:
    base_url: str = "https://api.fake.test/v1"
    api_key: str = "fake-key"
    batch_size: int = 1
    exclusive: bool = False
    delivery: DeliverySettings = field(default_factory=lambda: DeliverySettings(
        rate_limit_rps=0.0, concurrency=4, max_attempts=5, backoff_initial_s=0.5,
        backoff_max_s=8.0, max_retry_time_s=120.0, timeout_s=5.0, auth_probe_interval_s=30.0))


def settings(**delivery: Any) -> FakeSettings:
    s = FakeSettings(batch_size=delivery.pop("batch_size", 1),
                     exclusive=delivery.pop("exclusive", False))
    return replace(s, delivery=replace(s.delivery, **delivery))


def build_requests(records: list[SinkRecord], s: FakeSettings):
    """Batches of s.batch_size; a record whose payload has "bad" is a mapping failure."""
    requests, failures, batch = [], [], []
    for record in records:
        if record.payload.get("bad"):
            err = Permanent("no email")
            err.reason = "missing_email"
            failures.append((record, err))
            continue
        batch.append(record)
        if len(batch) == s.batch_size:
            requests.append(_request(batch, s))
            batch = []
    if batch:
        requests.append(_request(batch, s))
    return requests, failures


def _request(batch: list[SinkRecord], s: FakeSettings) -> HttpRequest:
    body = {"items": [{"id": r.id, "key": r.key, **r.payload} for r in batch]}
    return HttpRequest("POST", "/send", body, [r.id for r in batch], "send",
                       exclusive=s.exclusive, record_keys=[r.key for r in batch])


def interpret(request: HttpRequest, status: int, body: bytes | str, headers: Any):
    """2xx: per-record {"failed": {id: "retry"|"perm"|"throttle"}}; else the status decides."""
    if 200 <= status < 300:
        failed = (json.loads(body) if body else {}).get("failed", {})
        kinds = {"retry": Retryable("later", status=status),
                 "perm": Permanent("rejected", status=status),
                 "throttle": Throttled("slow down", status=status, retry_after=3.0)}
        return [RecordOutcome(i, kinds.get(failed.get(i))) for i in request.record_ids]
    text = body.decode() if isinstance(body, bytes) else body
    if status in (401, 403):
        error = AuthError(f"HTTP {status}", status=status, body=text)
    elif status == 429:
        ra = headers.get("retry-after")
        error = Throttled("HTTP 429", status=status, body=text,
                          retry_after=float(ra) if ra else None)
    elif status in (408, 423) or (status >= 500 and status != 501):
        error = Retryable(f"HTTP {status}", status=status, body=text)
    else:
        error = Permanent(f"HTTP {status}", status=status, body=text)
    return [RecordOutcome(i, error) for i in request.record_ids]


def auth(s: FakeSettings) -> dict[str, str]:
    return {"X-Api-Key": s.api_key}


def destination(repair: Callable | None = None) -> SimpleNamespace:
    module = SimpleNamespace(NAME="fake", INTEGRATION="Fake", build_requests=build_requests,
                             interpret=interpret, auth=auth)
    if repair is not None:
        module.repair = repair
    return module


def record(n: int | str, key: str | None = None, **payload: Any) -> SinkRecord:
    return SinkRecord(destination="fake", op="send", key=key or f"user-{n}", id=f"r{n}",
                      payload=payload or {"n": n}, source={"topic": "sink", "offset": n},
                      created_at=WALL_OFFSET + 990.0)


class FakeApi:
    """MockTransport handler: `script` is a list of responses (or exceptions) used in order, the
    last one repeating; or set `respond` to a function(request_json) -> httpx.Response."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script) or [httpx.Response(200, json={})]
        self.respond: Callable[[dict], httpx.Response] | None = None
        self.calls: list[dict] = []
        self.headers: list[httpx.Headers] = []

    def ids(self) -> list[list[str]]:
        return [[item["id"] for item in call.get("items", [])] for call in self.calls]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        doc = json.loads(request.content) if request.content else {}
        doc["_path"] = request.url.path
        self.calls.append(doc)
        self.headers.append(request.headers)
        if self.respond is not None:
            return self.respond(doc)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step


@dataclass
class Rig:
    deliverer: Deliverer
    api: Any
    clock: FakeClock
    metrics: Metrics
    ledger: InMemoryLedger

    def snap(self, metric: str) -> dict:
        return self.metrics.snapshot()[metric]


def rig(api: Any, s: FakeSettings | None = None, dest: SimpleNamespace | None = None) -> Rig:
    clock = FakeClock()
    metrics = Metrics()
    ledger = InMemoryLedger(3600, clock=clock.wall)
    dest = dest or destination()
    s = s or settings()
    client = build_client(dest, s, transport=httpx.MockTransport(api))
    deliverer = Deliverer(dest, s, client, ledger, metrics, clock=clock, sleep=clock.sleep,
                          wall=clock.wall, rng=lambda: 0.5)
    return Rig(deliverer, api, clock, metrics, ledger)
