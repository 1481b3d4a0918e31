"""The sandbox APIs themselves, over real sockets with httpx: vendor contracts from
the shared api-facts.md (auth, limits, partial answers) and the fault-scripting machinery."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from streamproc.dev.sandbox import (
    CleverTapFake,
    Fault,
    MailjetFake,
    SANDBOX_CREDENTIALS,
    MailmodoFake,
    SandboxServer,
    SegmentFake,
    running,
)
from streamproc.dev.sandbox.mailjet import PROPERTIES_INVALID, PROPERTY_NOT_DEFINED

MM_KEY = "mm-test-key"
WRITE_KEY = "seg-test-key"
CT_ACCOUNT, CT_PASSCODE = "TEST-ACC", "ct-pass"
MJ_KEY, MJ_SECRET, MJ_LIST = "mj-key", "mj-secret", "4242"
MM_HEADERS = {"mmApiKey": MM_KEY}
CT_HEADERS = {"X-CleverTap-Account-Id": CT_ACCOUNT, "X-CleverTap-Passcode": CT_PASSCODE,
              "Content-Type": "application/json; charset=utf-8"}
NOW = 1_700_000_000


@pytest.fixture(scope="module")
def server():
    with SandboxServer(MailmodoFake(MM_KEY), SegmentFake(WRITE_KEY),
                       CleverTapFake(CT_ACCOUNT, CT_PASSCODE),
                       MailjetFake(MJ_KEY, MJ_SECRET, list_ids={MJ_LIST})) as running_server:
        yield running_server


@pytest.fixture
def mm(server) -> MailmodoFake:
    server["mailmodo"].reset()
    return server["mailmodo"]


@pytest.fixture
def seg(server) -> SegmentFake:
    server["segment"].reset()
    return server["segment"]


@pytest.fixture
def ct(server) -> CleverTapFake:
    server["clevertap"].reset()
    return server["clevertap"]


@pytest.fixture
def mj(server) -> MailjetFake:
    server["mailjet"].reset()
    return server["mailjet"]


def seg_message(i: int, **extra) -> dict:
    return {"type": "track", "event": "Email Opened", "userId": f"u{i}", "messageId": f"m-{i}", **extra}


def ct_event(**extra) -> dict:
    return {"type": "event", "evtName": "MM Email Opened", "identity": "u1", "ts": NOW, **extra}


# ---- shapes and auth ------------------------------------------------------------------------
def test_base_urls_are_origins_and_api_urls_have_the_vendor_base_paths(server):
    urls = server.base_urls  # what STREAMPROC_<NAME>_BASE_URL takes: the client adds the path
    assert all(u.startswith("http://127.0.0.1:") and u.count("/") == 2 for u in urls.values())
    assert server["mailmodo"].api_url == urls["mailmodo"] + "/api/v1"
    assert server["mailjet"].api_url == urls["mailjet"] + "/v3/REST"
    assert server["segment"].api_url == urls["segment"]
    assert server["clevertap"].api_url == urls["clevertap"]


def test_auth_rejection_per_api(mm, seg, ct, mj):
    r = httpx.post(f"{mm.api_url}/addToList", json={"email": "a@x.co", "listName": "l"},
                   headers={"mmApiKey": "wrong"})
    assert r.status_code == 401 and mm.contacts == {}
    assert httpx.post(f"{seg.base_url}/v1/batch", json={"batch": [seg_message(1)]},
                      auth=("wrong", "")).status_code == 401
    assert httpx.post(f"{seg.base_url}/v1/batch", json={"batch": [seg_message(1)]},
                      auth=(WRITE_KEY, "not-empty")).status_code == 401
    r = httpx.post(f"{ct.base_url}/1/upload", json={"d": [ct_event()]},
                   headers={**CT_HEADERS, "X-CleverTap-Passcode": "wrong"})
    assert r.status_code == 401
    assert r.json() == {"status": "fail", "error": "Invalid Credentials", "code": 401}
    r = httpx.post(f"{mj.api_url}/contactmetadata", auth=(MJ_KEY, "wrong"),
                   json={"Name": "x", "DataType": "str", "NameSpace": "static"})
    assert r.status_code == 401 and r.json()["StatusCode"] == 401
    assert seg.messages == [] and ct.records == [] and mj.metadata == {}
    assert [q.status for q in mm.requests("/addToList")] == [401]


def test_recorded_requests_keep_headers_and_json_body(mm):
    httpx.post(f"{mm.api_url}/addToList", headers=MM_HEADERS,
               json={"email": "a@x.co", "listName": "news", "data": {"first_name": "Ada"}})
    (req,) = mm.requests(path="/addToList")
    assert req.method == "POST" and req.url_path == "/api/v1/addToList" and req.status == 200
    assert req.headers["mmapikey"] == MM_KEY
    assert req.body == {"email": "a@x.co", "listName": "news", "data": {"first_name": "Ada"}}
    assert mm.contacts["a@x.co"]["data"] == {"first_name": "Ada"}
    mm.clear()
    assert mm.requests() == []


# ---- Mailmodo -------------------------------------------------------------------------------
def test_mailmodo_batch_of_101_contacts_is_rejected(mm):
    values = [{"email": f"u{i}@x.co", "data": {}} for i in range(101)]
    r = httpx.post(f"{mm.api_url}/addToList/batch", headers=MM_HEADERS,
                   json={"listName": "l", "values": values})
    assert r.status_code == 400 and mm.contacts == {}
    r = httpx.post(f"{mm.api_url}/addToList/batch", headers=MM_HEADERS,
                   json={"listName": "l", "values": values[:100]})
    assert r.status_code == 200 and len(mm.contacts) == 100


def test_mailmodo_batch_with_duplicate_emails_is_rejected(mm):
    values = [{"email": "a@x.co", "data": {}}, {"email": "a@x.co", "data": {"age": 3}}]
    r = httpx.post(f"{mm.api_url}/addToList/batch", headers=MM_HEADERS,
                   json={"listName": "l", "values": values})
    assert r.status_code == 400 and mm.contacts == {}


def test_mailmodo_batch_with_invalid_emails_answers_207_and_keeps_the_valid(mm):
    values = [{"email": "good@x.co", "data": {"city": "Oslo"}}, {"email": "not-an-email", "data": {}}]
    r = httpx.post(f"{mm.api_url}/addToList/batch", headers=MM_HEADERS,
                   json={"listName": "l", "values": values})
    assert r.status_code == 207
    assert [e["email"] for e in r.json()["errors"]] == ["not-an-email"]
    assert r.json()["errors"][0]["reason"]
    assert list(mm.contacts) == ["good@x.co"] and mm.contacts["good@x.co"]["data"] == {"city": "Oslo"}


def test_mailmodo_add_event_validates_ts_and_property_types(mm):
    url, ok = f"{mm.api_url}/addEvent", {"email": "a@x.co", "event_name": "Signed Up", "ts": NOW}
    assert httpx.post(url, headers=MM_HEADERS, json={**ok, "ts": NOW * 1000}).status_code == 400
    assert httpx.post(url, headers=MM_HEADERS, json={**ok, "ts": "2024-01-01"}).status_code == 400
    nested = {**ok, "event_properties": {"plan": {"name": "pro"}}}
    assert httpx.post(url, headers=MM_HEADERS, json=nested).status_code == 400
    good = {**ok, "event_properties": {"plan": "pro", "seats": 3, "paid": True, "ratio": 0.5}}
    r = httpx.post(url, headers=MM_HEADERS, json=good)
    assert r.status_code == 200 and r.json()["success"] is True and r.json()["ref"]
    assert [e["event_properties"] for e in mm.events] == [good["event_properties"]]


def test_mailmodo_unknown_campaign_is_200_with_success_false(mm):
    body = {"email": "a@x.co", "data": {"plan": "pro"}, "campaign_data": {"otp": "1"}}
    r = httpx.post(f"{mm.api_url}/triggerCampaign/bad-id", headers=MM_HEADERS, json=body)
    assert r.status_code == 200 and r.json()["success"] is False and mm.triggers == []
    r = httpx.post(f"{mm.api_url}/triggerCampaign/c-1", headers=MM_HEADERS, json=body)
    assert r.status_code == 200 and r.json()["success"] is True
    assert mm.triggers[0]["campaign_data"] == {"otp": "1"}
    assert mm.contacts["a@x.co"]["data"] == {"plan": "pro"}  # data saved, campaign_data not
    mm.known_campaigns = {"only-this"}
    r = httpx.post(f"{mm.api_url}/triggerCampaign/c-1", headers=MM_HEADERS, json=body)
    assert r.json()["success"] is False


def test_mailmodo_unsubscribe_marks_the_contact(mm):
    r = httpx.post(f"{mm.api_url}/contacts/unsubscribe", headers=MM_HEADERS, json={"email": "a@x.co"})
    assert r.status_code == 200 and mm.contacts["a@x.co"]["unsubscribed"] is True


async def test_mailmodo_concurrent_batch_calls_are_a_recorded_violation(mm):
    mm.latency = 0.3
    body = {"listName": "l", "values": [{"email": "a@x.co", "data": {}}]}
    async with httpx.AsyncClient(headers=MM_HEADERS) as client:
        first, second = await asyncio.gather(
            client.post(f"{mm.api_url}/addToList/batch", json=body),
            client.post(f"{mm.api_url}/addToList/batch", json=body))
        assert sorted([first.status_code, second.status_code]) == [200, 429]
        assert mm.batch_violations == 1
        again = await client.post(f"{mm.api_url}/addToList/batch", json=body)  # one at a time: fine
        assert again.status_code == 200 and mm.batch_violations == 1


# ---- Segment --------------------------------------------------------------------------------
def test_segment_batch_of_2501_messages_is_rejected(seg):
    batch = [seg_message(i) for i in range(2501)]
    r = httpx.post(f"{seg.base_url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert r.status_code == 400 and seg.messages == []
    r = httpx.post(f"{seg.base_url}/v1/batch", json={"batch": batch[:2500]}, auth=(WRITE_KEY, ""))
    assert r.status_code == 200 and len(seg.messages) == 2500


def test_segment_byte_limits(seg):
    big = seg_message(1, properties={"blob": "x" * (33 * 1024)})
    assert httpx.post(f"{seg.base_url}/v1/batch", json={"batch": [big]},
                      auth=(WRITE_KEY, "")).status_code == 400
    over_batch = [seg_message(i, properties={"blob": "x" * (20 * 1024)}) for i in range(30)]  # ~600 KB
    assert httpx.post(f"{seg.base_url}/v1/batch", json={"batch": over_batch},
                      auth=(WRITE_KEY, "")).status_code == 400
    assert seg.messages == []


@pytest.mark.parametrize("drop", ["type", "messageId", "userId"])
def test_segment_message_missing_required_field_is_rejected(seg, drop):
    message = {k: v for k, v in seg_message(1).items() if k != drop}
    r = httpx.post(f"{seg.base_url}/v1/batch", json={"batch": [message]}, auth=(WRITE_KEY, ""))
    assert r.status_code == 400


def test_segment_dedupes_on_message_id_and_accepts_single_endpoints(seg):
    anon = {"anonymousId": "anon-1", "messageId": "m-x", "traits": {"email": "a@x.co"}}
    assert httpx.post(f"{seg.base_url}/v1/identify", json=anon, auth=(WRITE_KEY, "")).json() == {"success": True}
    r = httpx.post(f"{seg.base_url}/v1/batch", auth=(WRITE_KEY, ""),
                   json={"batch": [seg_message(1), seg_message(1), {**anon, "type": "identify"}]})
    assert r.status_code == 200
    assert [m["messageId"] for m in seg.messages] == ["m-x", "m-1"] and seg.duplicates == 2
    assert seg.messages_of("identify")[0]["traits"] == {"email": "a@x.co"}


# ---- CleverTap ------------------------------------------------------------------------------
def test_clevertap_more_than_1000_records_is_rejected(ct):
    r = httpx.post(f"{ct.base_url}/1/upload", headers=CT_HEADERS,
                   content=json.dumps({"d": [ct_event()] * 1001}))
    assert r.status_code == 400 and ct.records == []
    r = httpx.post(f"{ct.base_url}/1/upload", headers=CT_HEADERS,
                   content=json.dumps({"d": [ct_event()] * 1000}))
    assert r.status_code == 200 and r.json()["processed"] == 1000


def test_clevertap_partial_answer_lists_unprocessed_codes(ct):
    no_name = {k: v for k, v in ct_event().items() if k != "evtName"}
    no_identity = {k: v for k, v in ct_event().items() if k != "identity"}
    records = [ct_event(), no_name, no_identity, ct_event(ts=str(NOW)), ct_event(objectId="__g1")]
    r = httpx.post(f"{ct.base_url}/1/upload", headers=CT_HEADERS, content=json.dumps({"d": records}))
    body = r.json()
    assert r.status_code == 200 and body["status"] == "partial" and body["processed"] == 2
    assert [u["code"] for u in body["unprocessed"]] == [509, 523, 525]
    assert body["unprocessed"][0]["record"] == no_name and body["unprocessed"][0]["error"]
    r = httpx.post(f"{ct.base_url}/1/upload", headers=CT_HEADERS, content=json.dumps({"d": [no_name]}))
    assert r.json()["status"] == "fail" and r.json()["processed"] == 0


async def test_clevertap_refuses_the_16th_concurrent_request_without_retry_after(ct):
    ct.latency = 0.5
    async with httpx.AsyncClient(headers=CT_HEADERS) as client:
        answers = await asyncio.gather(*[
            client.post(f"{ct.base_url}/1/upload", content=json.dumps({"d": [ct_event()]}))
            for _ in range(16)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 15 + [429]
    assert "retry-after" not in next(a for a in answers if a.status_code == 429).headers
    assert ct.max_in_flight == 16 and ct.concurrency_rejections == 1


# ---- Mailjet --------------------------------------------------------------------------------
def test_mailjet_undefined_property_is_400_until_defined(mj):
    url, auth = f"{mj.api_url}/contactslist/{MJ_LIST}/managecontact", (MJ_KEY, MJ_SECRET)
    body = {"Email": "a@x.co", "Name": "Ada", "Action": "addnoforce", "Properties": {"plan": "pro"}}
    r = httpx.post(url, auth=auth, json=body)
    assert r.status_code == 400
    assert r.json()["ErrorMessage"] == PROPERTIES_INVALID == "Object properties invalid"
    assert r.json()["ErrorInfo"]["Properties"] == [{"plan": PROPERTY_NOT_DEFINED}]
    assert r.json()["StatusCode"] == 400
    meta = {"Name": "plan", "DataType": "str", "NameSpace": "static"}
    assert httpx.post(f"{mj.api_url}/contactmetadata", auth=auth, json=meta).status_code == 201
    assert httpx.post(f"{mj.api_url}/contactmetadata", auth=auth, json=meta).status_code == 400
    r = httpx.post(url, auth=auth, json=body)
    assert r.status_code == 201
    assert r.json()["Count"] == 1 and r.json()["Total"] == 1
    data = r.json()["Data"][0]
    assert data["Email"] == "a@x.co" and data["Action"] == "addnoforce" and data["ContactID"]
    assert data["Properties"] == {"plan": "pro"}
    assert mj.contacts["a@x.co"]["Lists"] == {MJ_LIST: "subscribed"}


def test_mailjet_unknown_list_wrong_type_and_bad_action(mj):
    auth = (MJ_KEY, MJ_SECRET)
    body = {"Email": "a@x.co", "Action": "addforce"}
    assert httpx.post(f"{mj.api_url}/contactslist/999/managecontact", auth=auth, json=body).status_code == 404
    mj.define_property("age", "int")
    r = httpx.post(f"{mj.api_url}/contactslist/{MJ_LIST}/managecontact", auth=auth,
                   json={**body, "Properties": {"age": "forty"}})
    assert r.status_code == 400 and r.json()["ErrorMessage"] == PROPERTIES_INVALID
    r = httpx.post(f"{mj.api_url}/contactslist/{MJ_LIST}/managecontact", auth=auth,
                   json={**body, "Action": "subscribe"})
    assert r.status_code == 400
    assert mj.contacts == {}


# ---- fault scripting and modes ----------------------------------------------------------------
def test_scripted_429_with_retry_after_then_normal_answers(mm):
    mm.script("/addEvent", [Fault.status(429, retry_after=1), Fault.status(500)])
    body, url = {"email": "a@x.co", "event_name": "E", "ts": NOW}, f"{mm.api_url}/addEvent"
    first = httpx.post(url, headers=MM_HEADERS, json=body)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert httpx.post(f"{mm.api_url}/addToList", headers=MM_HEADERS,  # other paths untouched
                      json={"email": "a@x.co", "listName": "l"}).status_code == 200
    assert httpx.post(url, headers=MM_HEADERS, json=body).status_code == 500
    assert httpx.post(url, headers=MM_HEADERS, json=body).status_code == 200
    assert [(q.status, q.fault) for q in mm.requests("/addEvent")] == [
        (429, "status"), (500, "status"), (200, None)]
    assert len(mm.events) == 1 and mm.pending_faults() == 0


def test_scripted_body_auth_reject_passthrough_and_disconnect(ct):
    partial = {"status": "partial", "processed": 0, "unprocessed": []}
    ct.script("*", [Fault.status(200, body=partial), Fault.passthrough(), Fault.auth_reject(),
                    Fault.disconnect()])
    post = lambda: httpx.post(f"{ct.base_url}/1/upload", headers=CT_HEADERS,  # noqa: E731
                              content=json.dumps({"d": [ct_event()]}))
    assert post().json() == partial
    assert post().json()["status"] == "success"
    assert post().json() == {"status": "fail", "error": "Invalid Credentials", "code": 401}
    with pytest.raises(httpx.TransportError):
        post()
    assert len(ct.requests()) == 4 and len(ct.records) == 1


def test_delay_makes_the_client_time_out_and_is_recorded(seg):
    seg.script("/v1/batch", [Fault.delay(3)])
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{seg.base_url}/v1/batch", json={"batch": [seg_message(1)]},
                   auth=(WRITE_KEY, ""), timeout=0.3)
    assert time.monotonic() - started < 2
    assert [q.fault for q in seg.requests("/v1/batch")] == ["delay"]


def test_down_mode_answers_503_and_latency_slows_answers(mj):
    mj.down = True
    r = httpx.get(f"{mj.api_url}/contactmetadata", auth=(MJ_KEY, MJ_SECRET))
    assert r.status_code == 503 and mj.requests()[0].status == 503
    mj.down, mj.latency = False, 0.2
    started = time.monotonic()
    assert httpx.get(f"{mj.api_url}/contactmetadata", auth=(MJ_KEY, MJ_SECRET)).status_code == 200
    assert time.monotonic() - started >= 0.2


# ---- other ways to run them ---------------------------------------------------------------------
async def test_running_on_the_current_loop():
    fake = SegmentFake()
    async with running(fake) as urls:
        assert urls == {"segment": fake.base_url}
        async with httpx.AsyncClient(auth=(fake.write_key, "")) as client:
            r = await client.post(f"{fake.base_url}/v1/track", json=seg_message(7))
        assert r.status_code == 200 and fake.messages[0]["userId"] == "u7"
    assert fake.base_url is None


def test_cli_writes_base_urls_and_serves_them(tmp_path: Path):
    port_file = tmp_path / "sandbox.json"
    command = [sys.executable, "-m", "streamproc.dev.sandbox", "--port-file", str(port_file)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            urls = json.loads(proc.stdout.readline())
            assert set(urls) == {"mailmodo", "segment", "clevertap", "mailjet"}
            assert all(u.startswith("http://127.0.0.1:") and u.count("/") == 2
                       for u in urls.values())  # base URLs: the client adds the API path
            assert json.loads(port_file.read_text()) == urls
            r = httpx.post(f"{urls['segment']}/v1/track", json=seg_message(1),
                           auth=(SANDBOX_CREDENTIALS["segment"]["write_key"], ""))
            assert r.status_code == 200
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0
