"""Pure helpers of the ingest endpoints: auth parsing, limits, batch splitting, keys."""

import base64
import gzip
import re

import orjson
import pytest

from streamproc.http.ingest.common import (
    IngestError,
    basic_credentials,
    bearer_token,
    inflate,
    normalised_email,
    secret_matches,
    utc_now_iso,
    webhook_authorized,
)
from streamproc.http.ingest.segment import (
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MessageError,
    prepare_message,
    split_batch,
)
from streamproc.http.ingest.webhooks import (first_email_clevertap, first_email_mailjet,
                                             mailmodo_records)


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------ auth parsing


def test_basic_credentials():
    assert basic_credentials(basic("wk1")) == ("wk1", "")
    assert basic_credentials(basic("u", "p:with:colons")) == ("u", "p:with:colons")
    assert basic_credentials("basic " + base64.b64encode(b"nocolon").decode()) == ("nocolon", "")
    for bad in (None, "", "Basic", "Basic !!!notbase64", "Bearer abc", "Digest x"):
        assert basic_credentials(bad) is None, bad


def test_bearer_token():
    assert bearer_token("Bearer tok") == "tok"
    assert bearer_token("bearer   tok ") == "tok"
    assert bearer_token(basic("u", "tok")) is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_secret_matches():
    assert secret_matches("wk2", ("wk1", "wk2"))
    assert not secret_matches("wk3", ("wk1", "wk2"))
    assert not secret_matches("", ("wk1",))
    assert not secret_matches(None, ("wk1",))
    assert not secret_matches("", ("",))  # an empty configured key never matches
    assert not secret_matches("wk1", ())


def test_webhook_authorized_forms():
    assert webhook_authorized("Bearer tok", None, "tok")
    assert webhook_authorized(basic("anyone", "tok"), None, "tok")
    assert webhook_authorized(None, "tok", "tok")
    assert not webhook_authorized("Bearer nope", None, "tok")
    assert not webhook_authorized(basic("tok", ""), None, "tok")  # token must be the password
    assert not webhook_authorized(None, None, "tok")
    assert not webhook_authorized(None, "tokx", "tok")
    assert webhook_authorized("Bearer wrong", "tok", "tok")  # any valid carrier is enough


def test_webhook_never_open_without_a_token():
    for auth, query in (("Bearer ", None), (None, ""), (basic("u", ""), None), (None, None)):
        assert not webhook_authorized(auth, query, "")


# ------------------------------------------------------------------ limits and bodies


def test_inflate_gzip_bounded():
    body = orjson.dumps({"a": "x" * 1000})
    assert inflate(gzip.compress(body), "gzip", 10_000) == body
    assert inflate(body, "gzip", 10_000) == body  # already inflated by aiohttp
    assert inflate(body, None, 10) == body  # no encoding: untouched (size checked by the reader)
    with pytest.raises(IngestError) as e:
        inflate(gzip.compress(b"0" * 100_000), "gzip", 1000)  # a small bomb
    assert e.value.status == 413
    with pytest.raises(IngestError) as e:
        inflate(gzip.compress(b"0" * 100_000), "gzip", 1000, status=400, code="payload_too_large")
    assert e.value.status == 400 and e.value.code == "payload_too_large"
    with pytest.raises(IngestError) as e:
        inflate(b"\x1f\x8b" + b"garbage", "gzip", 1000)
    assert e.value.status == 400


def test_error_body_has_segment_and_generic_keys():
    body = IngestError(400, "not_json", "bad", extra={"errors": []}).body()
    assert body == {"success": False, "code": "not_json", "error": "bad", "message": "bad",
                    "errors": []}


def test_received_at_format():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now_iso())


# ------------------------------------------------------------------ segment messages


def test_single_message_type_from_path_and_fields():
    key, value = prepare_message({"userId": "u1", "type": "page", "event": "E",
                                  "writeKey": "secret"}, received_at="R", kind="track")
    msg = orjson.loads(value)
    assert key == b"u1"
    assert msg["type"] == "track"
    assert msg["receivedAt"] == "R"
    assert re.fullmatch(r"[0-9a-f-]{36}", msg["messageId"])
    assert "writeKey" not in msg


def test_message_keeps_message_id_and_keys_by_anonymous_id():
    key, value = prepare_message({"anonymousId": "anon", "messageId": "m-1", "type": "track",
                                  "receivedAt": "client"}, received_at="R")
    assert key == b"anon"
    msg = orjson.loads(value)
    assert msg["messageId"] == "m-1" and msg["receivedAt"] == "R"
    assert prepare_message({"userId": "", "anonymousId": "a", "type": "page"},
                           received_at="R")[0] == b"a"
    assert prepare_message({"userId": 42, "type": "page"}, received_at="R")[0] == b"42"


@pytest.mark.parametrize("msg,reason", [
    ([1], "not_object"),
    ("x", "not_object"),
    ({"userId": "u"}, "bad_type"),
    ({"userId": "u", "type": "Track"}, "bad_type"),
    ({"userId": "u", "type": 3}, "bad_type"),
    ({"type": "track", "event": "E"}, "missing_id"),
    ({"type": "track", "userId": None, "anonymousId": "  "}, "missing_id"),
    ({"type": "track", "userId": True}, "missing_id"),
])
def test_message_errors(msg, reason):
    with pytest.raises(MessageError) as e:
        prepare_message(msg, received_at="R")
    assert e.value.reason == reason


def test_message_size_limit_is_32kb():
    def msg_of(size):
        base = {"type": "track", "userId": "u", "event": "E", "properties": {"p": ""}}
        pad = size - len(orjson.dumps(base))
        base["properties"]["p"] = "x" * pad
        assert len(orjson.dumps(base)) == size
        return base

    prepare_message(msg_of(MAX_MESSAGE_BYTES), received_at="R")
    with pytest.raises(MessageError) as e:
        prepare_message(msg_of(MAX_MESSAGE_BYTES + 1), received_at="R")
    assert e.value.reason == "oversize"


def test_split_batch_keeps_good_reports_bad():
    body = {"batch": [
        {"type": "identify", "userId": "u1", "traits": {"email": "a@b.co"}},
        "not an object",
        {"type": "track", "event": "E"},
        {"type": "alias", "userId": "u2", "previousId": "anon", "context": {"ip": "own"}},
        {"type": "nope", "userId": "u3"},
        {"type": "track", "userId": "u4", "event": "E", "properties": {"p": "x" * 40_000}},
    ], "context": {"ip": "batch", "locale": "en"}, "integrations": {"Mailjet": False},
        "sentAt": "2026-01-01T00:00:00Z"}
    good, errors = split_batch(body, received_at="R")
    assert [k for k, _ in good] == [b"u1", b"u2"]
    assert [(e["index"], e["reason"]) for e in errors] == [
        (1, "not_object"), (2, "missing_id"), (4, "bad_type"), (5, "oversize")]
    first, second = (orjson.loads(v) for _, v in good)
    assert first["context"] == {"ip": "batch", "locale": "en"}
    assert second["context"] == {"ip": "own", "locale": "en"}  # the message's keys win
    assert first["integrations"] == {"Mailjet": False}
    assert first["sentAt"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("body", [{}, {"batch": []}, {"batch": {"type": "track"}},
                                  {"batch": [{}] * (MAX_BATCH_MESSAGES + 1)}])
def test_split_batch_rejects_bad_shapes(body):
    with pytest.raises(IngestError) as e:
        split_batch(body, received_at="R")
    assert e.value.status == 400


# ------------------------------------------------------------------ webhook keys


def test_webhook_keys():
    assert normalised_email("  Ada@Example.COM ") == b"ada@example.com"
    assert normalised_email(None) is None and normalised_email(5) is None
    assert first_email_mailjet([{"email": "X@Y.io"}, {"email": "z@y.io"}]) == b"x@y.io"
    assert first_email_mailjet({"email": "X@Y.io"}) == b"x@y.io"
    assert first_email_mailjet([]) is None and first_email_mailjet([1]) is None
    assert first_email_clevertap({"email": "A@B.co"}) == b"a@b.co"
    assert first_email_clevertap({"profiles": [{"Email": "P@B.co"}, {"Email": "q@b.co"}]}) \
        == b"p@b.co"
    assert first_email_clevertap({"profiles": []}) is None
    recs = mailmodo_records([{"email": "A@b.co", "event": "opened"}, {"event": "x"}])
    assert [k for k, _ in recs] == [b"a@b.co", None]
    assert orjson.loads(recs[0][1]) == {"email": "A@b.co", "event": "opened"}


# ------------------------------------------------------------------ answering and writing


class _View:
    def bytes(self, value, *, content_type, status, headers):
        assert content_type == "application/json"
        return status, orjson.loads(value), headers


def _runtime(send_all=None, producer=object()):
    from types import SimpleNamespace

    from streamproc.core.metrics import Metrics

    async def ok(records):
        return len(records)

    return SimpleNamespace(metrics=Metrics(),
                           output=SimpleNamespace(producer=producer, send_all=send_all or ok))


async def test_respond_turns_crashes_into_500_json_and_counts():
    from streamproc.http.ingest.common import Reply, respond

    rt = _runtime()

    async def crash(rt, request):
        raise RuntimeError("boom")

    async def refuse(rt, request):
        raise IngestError(401, "unauthorized", "no")

    async def fine(rt, request, campaign_id):
        return Reply(200, {"success": True, "id": campaign_id})

    status, body, _ = await respond(_View(), rt, "x", crash, None, {})
    assert status == 500 and body["code"] == "internal_error" and "boom" not in str(body)
    status, body, _ = await respond(_View(), rt, "x", refuse, None, {})
    assert (status, body["error"]) == (401, "no")
    status, body, _ = await respond(_View(), rt, "y", fine, None, {"campaign_id": "c"})
    assert (status, body) == (200, {"success": True, "id": "c"})
    assert rt.metrics.snapshot()["ingest_requests"] == {
        ("x", "500"): 1.0, ("x", "401"): 1.0, ("y", "200"): 1.0}


async def test_write_answers_503_when_kafka_does_not_acknowledge(monkeypatch):
    import asyncio

    from streamproc.http.ingest import common as ingest

    async def hang(records):
        await asyncio.sleep(30)

    monkeypatch.setattr(ingest, "SEND_TIMEOUT_S", 0.05)
    with pytest.raises(IngestError) as e:
        await ingest.write(_runtime(send_all=hang), [("t", b"k", b"{}", [])])
    assert e.value.status == 503 and e.value.headers["Retry-After"]
    with pytest.raises(IngestError) as e:
        await ingest.write(_runtime(producer=None), [("t", b"k", b"{}", [])])
    assert e.value.status == 503
    await ingest.write(_runtime(), [("t", b"k", b"{}", [])])  # acknowledged: no error
