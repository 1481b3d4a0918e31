"""A repair fix (e.g. Mailjet /contactmetadata) that fails transiently must not dead-letter the
record it was repairing: the record goes to a later round, repair included."""

from __future__ import annotations

import httpx

from delivery_fakes import FakeApi, destination, record, rig, settings
from streamproc.config.settings import load_settings
from streamproc.core.metrics import Metrics
from streamproc.core.records import MAILJET, OP_CONTACT_UPSERT, SinkRecord
from streamproc.delivery.client import build_client
from streamproc.delivery.engine import Deliverer
from streamproc.delivery.ledger import InMemoryLedger
from streamproc.destinations import mailjet
from streamproc.destinations.request import HttpRequest
from streamproc.dev.sandbox import Fault, MailjetFake, running, sandbox_env

META = HttpRequest("POST", "/meta", {"Name": "plan"}, [], "contactmetadata")


def _respond_until_defined(meta_answers: list[int]):
    """/send answers 400 until a /meta call succeeded; /meta answers from `meta_answers`."""
    api, state = FakeApi(), {"defined": False}

    def respond(doc):
        if doc["_path"] == "/v1/meta":
            code = meta_answers.pop(0) if len(meta_answers) > 1 else meta_answers[0]
            state["defined"] |= code < 300
            return httpx.Response(code, text="busy" if code >= 500 else "")
        if state["defined"]:
            return httpx.Response(200, json={})
        return httpx.Response(400, text="undefined property plan")

    api.respond = respond
    return api


async def test_transient_fix_failure_retries_the_record_later():
    api = _respond_until_defined([503, 201])
    r = rig(api, dest=destination(repair=lambda req, code, body: [META]))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == ["r1"] and report.dead == []
    assert [c["_path"] for c in api.calls] == [
        "/v1/send", "/v1/meta", "/v1/send", "/v1/meta", "/v1/send"]
    assert len(r.clock.sleeps) == 1  # one backoff between the two rounds


async def test_fix_failing_for_good_exhausts_retries_not_a_permanent_dead_letter():
    api = _respond_until_defined([503])
    r = rig(api, settings(max_attempts=3, retry_budget_s=0.0),
            dest=destination(repair=lambda req, code, body: [META]))
    report = await r.deliverer.deliver([record(1)])
    assert report.delivered == []
    assert [(d.reason, d.attempts) for d in report.dead] == [("retries_exhausted", 3)]


async def test_mailjet_contactmetadata_500_against_the_sandbox_is_retried():
    """The real Mailjet module and the sandbox over a socket: the first /contactmetadata call
    answers 500; the contact must still be delivered with its property defined."""
    fake = MailjetFake()
    fake.script("/contactmetadata", [Fault.status(500)])
    async with running(fake) as urls:
        env = sandbox_env(urls)
        env["STREAMPROC_MAILJET_BACKOFF_INITIAL_S"] = "0.01"
        s = load_settings(env, strict=False).mailjet
        client = build_client(mailjet, s)
        deliverer = Deliverer(mailjet, s, client, InMemoryLedger(), Metrics())
        rec = SinkRecord(MAILJET, OP_CONTACT_UPSERT, "a@example.com", "id-1",
                         {"email": "a@example.com", "traits": {"plan": "pro"}})
        async with client:
            report = await deliverer.deliver([rec])
    assert report.delivered == ["id-1"] and report.dead == []
    assert fake.metadata["plan"]["DataType"] == "str"
    assert fake.contacts["a@example.com"]["Properties"] == {"plan": "pro"}
    assert [(r.path, r.status) for r in fake.requests()] == [
        ("/contactslist/10001/managecontact", 400), ("/contactmetadata", 500),
        ("/contactslist/10001/managecontact", 400), ("/contactmetadata", 201),
        ("/contactslist/10001/managecontact", 201)]
