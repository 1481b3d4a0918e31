"""Mailmodo mapping and response reading: fixture cases plus batching limits and order per key."""

from __future__ import annotations

import random

from destination_cases import record, run_mapping_case, run_response_case
from streamproc.config.settings import MailmodoSettings, Secret
from streamproc.core.errors import Permanent
from streamproc.destinations import mailmodo
from streamproc.destinations.mailmodo.mapping import build_requests, traits_to_contact_properties
from streamproc.destinations.request import HttpRequest

SLUG = "mailmodo"


def test_mapping_case(mapping_case):
    run_mapping_case(SLUG, mapping_case)


def test_response_case(response_case):
    run_response_case(SLUG, response_case)


def upsert(rid: str, email: str, **traits) -> dict:
    return {"id": rid, "destination": "mailmodo", "op": "contact_upsert", "key": email.lower(),
            "created_at": 1714564800.0, "payload": {"email": email, "traits": traits}}


def event(rid: str, email: str) -> dict:
    return {"id": rid, "destination": "mailmodo", "op": "add_event", "key": email.lower(),
            "created_at": 1714564800.0,
            "payload": {"email": email, "event_name": "E", "ts": 1714564800, "properties": {}}}


def test_101_contacts_make_two_batch_requests():
    records = [record(upsert(f"r{i}", f"user{i}@example.com")) for i in range(101)]
    requests, failures = build_requests(records, MailmodoSettings(use_batch=True))
    assert failures == []
    assert [len(r.record_ids) for r in requests] == [100, 1]
    assert [len(r.body["values"]) for r in requests] == [100, 1]
    assert all(r.path == "/addToList/batch" and r.exclusive for r in requests)
    assert [rid for r in requests for rid in r.record_ids] == [r.id for r in records]
    assert requests[0].record_keys == [f"user{i}@example.com" for i in range(100)]


def test_batch_off_sends_one_add_to_list_per_contact():
    records = [record(upsert(f"r{i}", f"user{i}@example.com")) for i in range(3)]
    requests, _ = build_requests(records, MailmodoSettings(use_batch=False))
    assert [(r.path, r.record_ids, r.exclusive) for r in requests] == [
        ("/addToList", ["r0"], False), ("/addToList", ["r1"], False), ("/addToList", ["r2"], False)]


def test_random_batches_keep_order_per_key_and_limits():
    rng = random.Random(7)
    emails = [f"user{i}@example.com" for i in range(12)]
    raw = []
    for i in range(700):
        email = rng.choice(emails)
        email = email.upper() if rng.random() < 0.1 else email
        raw.append(upsert(f"r{i}", email) if rng.random() < 0.8 else event(f"r{i}", email))
    records = [record(r) for r in raw]
    requests, failures = build_requests(records, MailmodoSettings(use_batch=True))
    assert failures == []
    position = {}
    for index, request in enumerate(requests):
        if request.path == "/addToList/batch":
            emails_in = [v["email"].lower() for v in request.body["values"]]
            assert len(emails_in) <= 100
            assert len(set(emails_in)) == len(emails_in), "an email twice in one batch"
        for rid in request.record_ids:
            position[rid] = index
    assert set(position) == {r.id for r in records}
    by_key: dict[str, list] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(position[r.id])
    for key, positions in by_key.items():
        assert positions == sorted(positions), f"order broken for {key}"


def test_same_key_never_shares_a_batch_twice():
    records = [record(upsert(f"r{i}", "ada@example.com", n=i)) for i in range(3)]
    requests, _ = build_requests(records, MailmodoSettings(use_batch=True))
    assert [r.record_ids for r in requests] == [["r0"], ["r1"], ["r2"]]


def test_contact_values_are_scalars_and_input_untouched():
    traits = {"a": {"b": {"c": [1, {"d": None}]}}, "n": None, "f": float("nan"), "ok": 1.5,
              "company": {"name": "Acme", "id": 7, "nested": {"x": True}}}
    before = repr(traits)
    props = traits_to_contact_properties(traits)
    assert props == {"a_b_c": '[1,{"d":null}]', "ok": 1.5, "company": "Acme", "company_id": 7,
                     "company_nested_x": True}
    assert all(isinstance(v, str | int | float | bool) for v in props.values())
    assert repr(traits) == before


def test_auth_header_and_face():
    headers = mailmodo.auth(MailmodoSettings(api_key=Secret("k-123")))
    assert headers["mmApiKey"] == "k-123"
    assert mailmodo.NAME == "mailmodo" and mailmodo.INTEGRATION == "Mailmodo"
    assert mailmodo.MAX_RECORDS_PER_REQUEST == 100


def test_multi_status_without_record_keys_reads_emails_from_the_body():
    request = HttpRequest("POST", "/addToList/batch", {"listName": "s", "values": [
        {"email": "a@example.com", "data": {}}, {"email": "b@example.com", "data": {}}]},
        ["ra", "rb"], "addToList/batch", exclusive=True)
    outcomes = mailmodo.interpret(request, 207, b'{"errors": [{"email": "A@example.com", '
                                                b'"reason": "bounced before"}]}', {})
    assert isinstance(outcomes[0].error, Permanent) and "bounced before" in str(outcomes[0].error)
    assert outcomes[1].ok
