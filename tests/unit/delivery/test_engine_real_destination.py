"""The engine with a real destination module (Mailmodo) behind httpx.MockTransport."""

from __future__ import annotations

import httpx
import orjson

from delivery_fakes import FakeClock
from streamproc.config.settings import MailmodoSettings, Secret
from streamproc.core.metrics import Metrics
from streamproc.core.records import MAILMODO, OP_ADD_EVENT, OP_CONTACT_UPSERT, SinkRecord
from streamproc.delivery.client import build_client
from streamproc.delivery.engine import Deliverer
from streamproc.delivery.ledger import InMemoryLedger
from streamproc.destinations import mailmodo


def _record(n: int, op: str, email: str, **payload) -> SinkRecord:
    return SinkRecord(destination=MAILMODO, op=op, key=email, id=f"mm{n}",
                      payload={"email": email, **payload}, created_at=1_700_000_000.0)


async def test_mailmodo_batch_207_partial_and_add_event():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.path, request.headers.get("mmApiKey"),
                      orjson.loads(request.content)))
        if request.url.path.endswith("/addToList/batch"):
            return httpx.Response(207, json={"errors": [{"email": "b@example.com",
                                                         "reason": "invalid email"}]})
        return httpx.Response(200, json={"success": True, "ref": "x"})

    settings = MailmodoSettings(base_url="https://api.mailmodo.test",  # the client adds /api/v1
                                api_key=Secret("mm-secret"), list_name="segment")
    clock = FakeClock()
    metrics = Metrics()
    client = build_client(mailmodo, settings, transport=httpx.MockTransport(handler))
    deliverer = Deliverer(mailmodo, settings, client, InMemoryLedger(3600), metrics,
                          clock=clock, sleep=clock.sleep)
    records = [
        _record(1, OP_CONTACT_UPSERT, "a@example.com", traits={"firstName": "Ann"}),
        _record(2, OP_CONTACT_UPSERT, "b@example.com", traits={}),
        _record(3, OP_ADD_EVENT, "a@example.com", event_name="Signed Up", ts=1_700_000_000,
                properties={"plan": "pro"}),
    ]
    async with client:
        report = await deliverer.deliver(records)
    assert sorted(report.delivered) == ["mm1", "mm3"]
    assert [(d.record.id, d.reason, d.status) for d in report.dead] == [
        ("mm2", "mailmodo_rejected", 207)]
    paths = [c[0] for c in calls]
    assert paths == ["/api/v1/addToList/batch", "/api/v1/addEvent"]  # a's event after a's upsert
    assert all(c[1] == "mm-secret" for c in calls)
    assert metrics.snapshot()["requests"][(MAILMODO, "addToList/batch", "207")] == 1
