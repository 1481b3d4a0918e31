"""What outcome records, `trace` and the status page show of personal data and secrets in the
cases a review found leaking (each failed on 3096607): an address a parse error quotes with a
typo, secret fields inside a JSON-escaped string, a JSON-escaped non-ASCII local part, an
address cut by an error's excerpt, and a batched request whose body lists other records'
data and errors."""

from __future__ import annotations

from types import SimpleNamespace as NS

import orjson
import pytest

from streamproc.config.settings import load_settings
from streamproc.core.events.inputs import parse_input
from streamproc.worker.outcomes import Outcomes
from streamproc.worker.scrub import Scrubber


def _raw(value: bytes, topic="mailmodo.raw"):
    return NS(value=value, topic=topic, partition=0, offset=7, key=None, timestamp=0,
              headers=[])


@pytest.mark.parametrize("typo", ["jane.doe@gmail", "jane.doe@gmail..com",
                                  "jane.doe @gmail.com", "jane.doe@gmail,com"])
def test_a_typo_email_quoted_by_a_bad_email_error_is_masked_in_the_dead_outcome(typo):
    o = Outcomes(load_settings({}), "outcomes")
    m = _raw(orjson.dumps({"event": "opened", "email": typo, "timestamp": 1763633400}))
    events, errors = parse_input("mailmodo", m)
    assert errors and errors[0].reason == "bad_email"
    docs = o.ingest_dead("mailmodo", m, errors)
    assert "jane.doe" not in docs[1]["msg"] and "***@gmail" in docs[1]["msg"], docs[1]["msg"]


@pytest.mark.parametrize("body, secret", [
    ('{"error":"invalid payload {\\"api_key\\":\\"sk_live_4f9a8b7c\\"}"}', "sk_live_4f9a8b7c"),
    ('{"echo":"{\\"Authorization\\":\\"Token tk_9f8e7d6c\\"}"}', "tk_9f8e7d6c"),
])
def test_a_secret_field_inside_a_json_escaped_string_is_removed(body, secret):
    shown = Scrubber()(body)
    assert secret not in shown and "***" in shown, shown


def test_a_json_escaped_non_ascii_local_part_is_masked():
    out = Scrubber()('{"email":"j\\u00e9r\\u00f4me.dupont@example.fr"}')
    assert "dupont" not in out and "j\\u00e9r" not in out and "@example.fr" in out, out


def test_a_batched_request_s_failure_shows_this_record_s_error_not_another_s():
    """A CleverTap upload of two records answered 200 partial: A refused (509), B refused
    (523). The body lists both, A's entry first (its identity and event data): B's trace
    shows B's own error instead."""
    from streamproc.core.errors import Permanent
    from streamproc.ops.trace import timeline
    from streamproc.ops.trace_text import render_text

    o = Outcomes(load_settings({}), "outcomes")
    body = orjson.dumps({"status": "partial", "processed": 0, "unprocessed": [
        {"status": "fail", "code": 509, "error": "Event name is mandatory",
         "record": {"objectId": "anon-user-A", "type": "event", "ts": 1763633400,
                    "evtData": {"plan": "gold", "note": "x" * 400}}},
        {"status": "fail", "code": 523, "error": "Identity is missing",
         "record": {"objectId": "anon-user-B", "type": "event", "evtName": "Opened"}}]}).decode()
    rec = lambda mid: NS(source={"message_id": mid}, id=f"id-{mid}", op="event")  # noqa: E731
    docs = o.attempt_outs("clevertap", NS(kind="upload"), 200, body, [
        (rec("A"), 1, Permanent("CleverTap 509: Event name is mandatory")),
        (rec("B"), 1, Permanent("CleverTap 523: Identity is missing"))])
    b_docs = [d for d in docs if d["m"] == "B"]
    text = render_text("B", [timeline("B", b_docs)])
    assert "anon-user-A" not in text, text  # A's identity is not in B's trace
    assert text.count("CleverTap 523: Identity is missing") == 2, text  # its attempt, result



def _body_with_email_at(at: int) -> str:
    """A 5xx body whose excerpt has 'jane.doe@example.com' with its '@' at index `at`."""
    head = '{"message":"'
    pad = at - len(head) - len(" contact jane.doe")
    body = head + "x" * pad + ' contact jane.doe@example.com is locked"}'
    assert body.index("@") == at
    return body


def test_an_email_cut_by_the_error_message_s_excerpt_is_masked_on_the_status_page():
    """classify_status puts body[:200] in the error's message; Outage keeps str(error)[:300]
    and the status page scrubs that already-cut text: an address cut inside its domain
    ('jane.doe@example') no longer looks like an email and is shown whole."""
    from streamproc.delivery.outage import Outage
    from streamproc.destinations.outcomes import classify_status
    from streamproc.http.status import _outage

    error = classify_status(503, _body_with_email_at(192))
    o = Outcomes(load_settings({}), "outcomes")
    outage = Outage("mailmodo", load_settings({}).destination("mailmodo").delivery, NS(
        destination_paused=NS(labels=lambda *a: NS(set=lambda v: None)),
        destination_paused_since=NS(labels=lambda *a: NS(set=lambda v: None))))
    outage.failed(["r1"], error, 503)
    rt = NS(outcomes=o, deliverers={"mailmodo": {"deliverer": NS(outage=outage)}})
    shown = _outage(rt, "mailmodo")["last_error"]
    assert "jane.doe" not in shown and shown.rstrip().endswith("contact"), shown


def test_a_single_record_s_failure_keeps_its_body_and_an_address_in_prose_stays_readable():
    """What the masks must not take: the body of a request that carried one record (its
    own), and the words around an address in a vendor's sentence."""
    from streamproc.core.errors import Permanent

    o = Outcomes(load_settings({}), "outcomes")
    rec = NS(source={"message_id": "A"}, id="id-A", op="event")
    [doc] = o.attempt_outs("clevertap", NS(kind="upload"), 200, '{"error": "Identity missing"}',
                           [(rec, 1, Permanent("CleverTap 523: Identity is missing"))])
    assert doc["b"] == '{"error": "Identity missing"}' and doc["err"].startswith("CleverTap 523")
    said = Scrubber()('{"message": "contact support at help@vendor.io now", "id": "x@y"}')
    assert said == '{"message": "contact support at h***@vendor.io now", "id": "x***@y"}'


def test_a_credential_cut_by_an_error_s_excerpt_leaves_no_part_of_itself():
    """Configured credentials are removed by exact match: the half an excerpt's cut leaves
    would not be. The cut drops the token it falls in."""
    from streamproc.destinations.outcomes import classify_status

    secret = "sk_live_0123456789abcdef"
    body = '{"message": "' + "x" * 180 + ' key ' + secret + ' refused"}'
    error = classify_status(400, body)
    assert body.index(secret) < 200 < body.index(secret) + len(secret)  # the cut is in it
    assert "sk_li" not in str(error) and str(error).rstrip().endswith("key")
    assert classify_status(400, '{"a": "short"}').args[0] == 'HTTP 400: {"a": "short"}'


@pytest.mark.parametrize("text, leaked", [
    ("GET /send?to=jane@example.com&cc=john@example.com", "john@"),
    ("jane@example.com/john@example.com", "john@"),
    ("jane@example.com|john@example.com", "john@"),
    ('{"url":"https://x/?to=jane@example.com\\u0026cc=john@example.com"}', "john@"),
])
def test_second_address_after_a_local_part_character_is_masked(text, leaked):
    shown = Scrubber()(text)
    assert leaked not in shown and shown.count("***@") == 2, shown


def test_mailmodo_duplicate_batch_message_does_not_keep_half_a_credential():
    from streamproc.destinations.mailmodo.responses import interpret
    from streamproc.destinations.request import HttpRequest
    secret = "mm_live_0123456789abcdef"
    body = '{"detail": "duplicate ' + "x" * 160 + " key " + secret + ' rest"}'
    req = HttpRequest(method="POST", path="/addToList/batch", body={"values": []},
                      kind="addToList/batch", record_ids=["r1"])
    [out] = interpret(req, 400, body)
    shown = Scrubber([secret])(str(out.error))
    assert "mm_live_01" not in shown, shown


def test_bad_email_longer_than_80_characters_leaves_no_unmasked_local_part():
    from streamproc.core.events.common import required_email

    value = ("jane.doe@example.com, john.smith@example.com, mary.jones@example.com, "
             "peter.parker@example.com")
    with pytest.raises(Exception) as e:
        required_email(value, "missing")
    shown = Scrubber()(str(e.value.message if hasattr(e.value, "message") else e.value))
    assert "peter" not in shown, shown


def test_prose_around_an_address_with_an_apostrophe_survives():
    assert "deliver to" in Scrubber()("Can't deliver to jane.doe@example.com's inbox")


def test_body_chars_zero_keeps_the_record_s_own_error():
    from streamproc.core.errors import Permanent
    from streamproc.worker.outcomes import Outcomes
    o = Outcomes(load_settings({"STREAMPROC_OUTCOMES_BODY_CHARS": "0"}), "outcomes")
    rec = lambda m: NS(source={"message_id": m}, id="id-" + m, op="event")  # noqa: E731
    docs = o.attempt_outs("clevertap", NS(kind="upload"), 200, "{}", [
        (rec("A"), 1, Permanent("CleverTap 509: Event name is mandatory")),
        (rec("B"), 1, Permanent("CleverTap 523: Identity is missing"))])
    assert docs[1].get("err"), docs[1]


def test_pre_cut_before_scrubbing_can_leave_half_a_configured_secret():
    secret = "sk_live_0123456789abcdef"
    body = ('{"token": "' + "t" * 1700 + '", "echo": "' + "y" * (2000 - 1700 - 30) + " " + secret
            + '"}')
    assert body.index(secret) < 2000 < body.index(secret) + len(secret)
    shown = Scrubber([secret])(body)
    assert "sk_liv" not in shown, shown


def test_a_url_s_password_is_removed_whether_emails_are_masked_or_not():
    text = "fetch https://admin:s3cr3tpass@api.example.com/v1 failed"
    for s in (Scrubber(), Scrubber(mask=False)):
        shown = s(text)
        assert "s3cr3tpass" not in shown and "https://admin:***" in shown
        assert "@api.example.com/v1 failed" in shown


@pytest.mark.parametrize("key", ["secret_key", "secretKey", "private_key", "access_key",
                                 "client-key", "passwd", "pwd", "signingKey"])
def test_more_secret_field_names_are_removed(key):
    shown = Scrubber()('{"%s": "v4lue-0f-it", "ok": 1}' % key)
    assert "v4lue-0f-it" not in shown and '"ok": 1' in shown, shown


def test_a_request_whose_records_failed_differently_keeps_no_shared_body():
    """A Mailmodo batch answered 400 with an error per record: the body lists the others'."""
    from streamproc.core.errors import Permanent

    o = Outcomes(load_settings({}), "outcomes")
    rec = lambda m: NS(source={"message_id": m}, id="id-" + m, op="add")  # noqa: E731
    body = '{"errors": [{"email": "a@x.io", "why": "bounced"}, {"email": "b@x.io"}]}'
    docs = o.attempt_outs("mailmodo", NS(kind="addToList/batch"), 400, body, [
        (rec("A"), 1, Permanent("a@x.io: bounced")), (rec("B"), 1, Permanent("b@x.io: bad"))])
    assert [("b" in d, d["err"]) for d in docs] == [(False, "a***@x.io: bounced"),
                                                    (False, "b***@x.io: bad")]
    same = o.attempt_outs("mailmodo", NS(kind="addToList/batch"), 400, body, [
        (rec("A"), 1, Permanent("HTTP 400")), (rec("B"), 1, Permanent("HTTP 400"))])
    assert all(d["b"].startswith('{"errors"') for d in same)  # the request's own answer


def test_an_ingest_error_is_kept_when_bodies_are_not():
    o = Outcomes(load_settings({"STREAMPROC_OUTCOMES_BODY_CHARS": "0"}), "outcomes")
    m = _raw(orjson.dumps({"event": "opened", "email": "nope", "timestamp": 1763633400}))
    _events, errors = parse_input("mailmodo", m)
    assert o.ingest_dead("mailmodo", m, errors)[1]["msg"] == "email 'nope' is not an email address"


def test_a_secret_named_xml_element_is_removed():
    shown = Scrubber()('<fault><ns:ApiKey>abc123</ns:ApiKey><password>hunter2</password>'
                       '<user>bob</user></fault>')
    assert shown == ('<fault><ns:ApiKey>***</ns:ApiKey><password>***</password>'
                     '<user>bob</user></fault>')
