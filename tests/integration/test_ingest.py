"""Ingest endpoints on a real worker and the real broker: every endpoint's happy path lands on
its raw topic (key and body checked), auth failures, size limits, non-JSON, a partial batch,
and analytics-python pointed at the worker (gzip) through to sink.mailmodo. One worker for
the whole module (a start costs seconds); every test uses its own ids on the shared topics."""

from __future__ import annotations

import asyncio
import base64
import gzip
import re
import time
import uuid
from dataclasses import dataclass

import analytics
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streamproc.config.topology import Topology
from streamproc.dev.sandbox import SandboxServer, sandbox_env

from harness import (
    WorkerProcess,
    apply_topics,
    read_topic,
    topology_for,
    unique_prefix,
    wait_for,
)

WRITE_KEY = "wk-ingest-1"
TOKEN = "hook-" + uuid.uuid4().hex
MAX_BODY = 100_000
ISO_MS_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


SEG = basic(WRITE_KEY)
BEARER = f"Bearer {TOKEN}"


@dataclass
class Ingest:
    bootstrap: str
    topology: Topology
    worker: WorkerProcess
    http: httpx.Client

    def topic(self, role: str) -> str:
        if role in self.topology.inputs:
            return self.topology.inputs[role].name
        return self.topology.destinations[role.split(".")[1]].sink.name

    def post(self, path: str, body=None, *, raw: bytes | None = None, auth: str | None = None,
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
             ) -> httpx.Response:
        h = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            h["Authorization"] = auth
        content = raw if raw is not None else orjson.dumps(body)
        return self.http.post(path, content=content, headers=h, params=params)

    def records(self, role: str, key_part: str) -> list:
        """The topic's records whose key contains key_part. Endpoints answer after the broker
        acknowledged, so one read after the response sees everything."""
        recs = read_topic(self.bootstrap, self.topic(role), settle=0.3, timeout=15)
        return [r for r in recs if r.key and key_part in r.key.decode()]


@pytest.fixture(scope="module")
def ingest(kafka_bootstrap):
    with SandboxServer() as sandbox:
        prefix = unique_prefix()
        topology = topology_for(prefix)
        apply_topics(kafka_bootstrap, topology)
        env = {**sandbox_env(sandbox.base_urls),
               "STREAMPROC_INGEST_SEGMENT_WRITE_KEYS": f"other-key,{WRITE_KEY}",
               "STREAMPROC_INGEST_WEBHOOK_TOKEN": TOKEN,
               "STREAMPROC_INGEST_MAX_BODY_BYTES": str(MAX_BODY)}
        w = WorkerProcess(kafka_bootstrap, prefix, env_extra=env, name="ingest").start()
        try:
            w.wait_ready()
            with httpx.Client(base_url=w.url, timeout=30) as http:
                yield Ingest(kafka_bootstrap, topology, w, http)
            # nothing above crashed the worker
            assert httpx.get(w.url + "/health", timeout=5).status_code == 200
        finally:
            try:
                w.stop(timeout=30)
            except AssertionError:
                w.kill()


def read_with_headers(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, dict]]:
    """(key, value, headers) of every record on a topic (harness.read_topic drops headers)."""

    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", group_id=None)
        await c.start()
        try:
            deadline = time.monotonic() + 10
            while not c.partitions_for_topic(topic) and time.monotonic() < deadline:
                await c._client.force_metadata_update()  # as harness.read_topic does
                await asyncio.sleep(0.1)
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            assert tps, f"topic {topic} does not exist"
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            end = await c.end_offsets(tps)
            out = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                positions = [await c.position(tp) for tp in tps]
                if all(pos >= end[tp] for pos, tp in zip(positions, tps)):
                    break
                for msgs in (await c.getmany(timeout_ms=200)).values():
                    out += [(m.key, m.value, {k: v.decode() for k, v in m.headers or ()})
                            for m in msgs]
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


# ---------------------------------------------------------------------------- Segment


def test_segment_single_calls_land_keyed_with_type_from_path(ingest):
    run = f"s-{uuid.uuid4().hex[:8]}"
    calls = {
        "identify": {"userId": f"{run}-identify", "traits": {"email": "a@example.com"}},
        "track": {"userId": f"{run}-track", "event": "Order Completed", "type": "page",
                  "messageId": "keep-me", "properties": {"total": 10}},
        "page": {"anonymousId": f"{run}-page", "name": "Home", "writeKey": WRITE_KEY},
        "screen": {"userId": f"{run}-screen", "name": "Main"},
        "group": {"userId": f"{run}-group", "groupId": "g1"},
        "alias": {"userId": f"{run}-alias", "previousId": "anon-1"},
    }
    for kind, body in calls.items():
        auth = None if "writeKey" in body else SEG  # page: the key in the body
        r = ingest.post(f"/v1/{kind}", body, auth=auth)
        assert (r.status_code, r.json()) == (200, {"success": True}), (kind, r.text)
    recs = {r.key.decode(): r.json() for r in ingest.records("segment", run)}
    assert set(recs) == {f"{run}-{kind}" for kind in calls}
    for kind, sent in calls.items():
        got = recs[f"{run}-{kind}"]
        assert got["type"] == kind
        assert re.fullmatch(ISO_MS_Z, got["receivedAt"])
        assert "writeKey" not in got
        for name, value in sent.items():
            if name not in ("type", "writeKey"):
                assert got[name] == value, (kind, name)
    assert recs[f"{run}-track"]["messageId"] == "keep-me"
    assert re.fullmatch(r"[0-9a-f-]{36}", recs[f"{run}-identify"]["messageId"])


def test_segment_batch_keeps_good_messages_and_reports_bad(ingest):
    run = f"b-{uuid.uuid4().hex[:8]}"
    body = {"batch": [
        {"type": "identify", "userId": f"{run}-1", "traits": {"email": "b@example.com"}},
        {"type": "track", "event": "No Id"},
        "not an object",
        {"type": "track", "userId": f"{run}-2", "event": "Big", "properties": {"p": "x" * 33_000}},
        {"type": "spaceship", "userId": f"{run}-3"},
        {"type": "track", "anonymousId": f"{run}-4", "event": "Ok"},
    ], "context": {"ip": "10.0.0.1"}, "sentAt": "2026-11-20T10:00:00.000Z"}
    r = ingest.post("/v1/batch", body, auth=SEG)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert [(e["index"], e["reason"]) for e in r.json()["errors"]] == [
        (1, "missing_id"), (2, "not_object"), (3, "oversize"), (4, "bad_type")]
    # /v1/import is the same endpoint; here gzip-encoded with the key in the body
    imp = gzip.compress(orjson.dumps({"writeKey": WRITE_KEY, "batch": [
        {"type": "page", "userId": f"{run}-5", "name": "Docs"}]}))
    r = ingest.post("/v1/import", raw=imp, headers={"Content-Encoding": "gzip"})
    assert (r.status_code, r.json()) == (200, {"success": True}), r.text
    # nothing valid: 400 with the errors, nothing written
    r = ingest.post("/v1/batch", {"batch": [7, {"type": "track", "userId": ""}]}, auth=SEG)
    assert r.status_code == 400, r.text
    assert [e["reason"] for e in r.json()["errors"]] == ["not_object", "missing_id"]

    recs = {r.key.decode(): r.json() for r in ingest.records("segment", run)}
    assert sorted(recs) == [f"{run}-1", f"{run}-4", f"{run}-5"]
    assert recs[f"{run}-1"]["context"] == {"ip": "10.0.0.1"}
    assert recs[f"{run}-1"]["sentAt"] == "2026-11-20T10:00:00.000Z"
    assert recs[f"{run}-5"]["name"] == "Docs" and "writeKey" not in recs[f"{run}-5"]


def test_analytics_python_end_to_end(ingest):
    run = uuid.uuid4().hex[:8]
    user, email = f"ap-{run}", f"Ada.{run}@Example.com"
    errors: list = []
    client = analytics.Client(WRITE_KEY, host=ingest.worker.url, gzip=True, max_retries=1,
                              upload_interval=0.1, on_error=lambda e, batch: errors.append(e))
    try:
        client.identify(user, {"email": email, "firstName": "Ada"})
        client.track(user, "Order Completed", {"order_id": run})
        client.flush()
    finally:
        client.shutdown()
    assert errors == []

    recs = ingest.records("segment", user)
    assert [(r.key.decode(), r.json()["type"]) for r in recs] == [(user, "identify"),
                                                                  (user, "track")]
    for r in recs:
        msg = r.json()
        assert msg["context"]["library"]["name"] == "analytics-python"
        assert msg["messageId"] and re.fullmatch(ISO_MS_Z, msg["receivedAt"])
        assert msg["sentAt"]

    def routed():
        got = [r.json() for r in read_topic(ingest.bootstrap, ingest.topic("sink.mailmodo"),
                                            settle=0.3, timeout=10)]
        mine = [r for r in got if r["key"] == user]  # the input's own key (its userId)
        return mine if len(mine) >= 2 else None

    mine = wait_for(routed, timeout=60, what="identify and track on sink.mailmodo")
    assert sorted(r["op"] for r in mine) == ["add_event", "contact_upsert"]
    event = next(r for r in mine if r["op"] == "add_event")
    assert event["payload"]["event_name"] == "Order Completed"
    assert event["payload"]["email"] == email


# ---------------------------------------------------------------------------- webhooks


def test_webhooks_land_on_their_raw_topics(ingest):
    run = uuid.uuid4().hex[:8]
    mm = {"event": "opened", "email": f" MM.{run}@Example.com", "timestamp": 1763632800,
          "campaign_name": "Welcome"}
    r = ingest.post("/webhooks/mailmodo", mm, auth=BEARER)
    assert (r.status_code, r.json()["success"]) == (200, True), r.text
    r = ingest.post("/webhooks/mailmodo", [{**mm, "email": f"mm2.{run}@example.com"}],
                    params={"token": TOKEN})
    assert r.status_code == 200, r.text
    recs = ingest.records("mailmodo", run)
    assert sorted((r.key.decode(), r.json()["email"]) for r in recs) == [
        (f"mm.{run}@example.com", mm["email"]),
        (f"mm2.{run}@example.com", f"mm2.{run}@example.com")]

    # Mailjet: the body byte for byte (MessageIDs above 2^53), one record, first item's email
    mj = (b'[{"event":"open","time":1763632800,"email":"MJ.' + run.encode() +
          b'@Example.com","MessageID":19421777396190490,"mj_campaign_id":7},'
          b'{"event":"click","time":1763632801,"email":"other@example.com",'
          b'"MessageID":123456789012345678901234}]')
    r = ingest.post("/webhooks/mailjet", raw=mj, auth=basic("mailjet", TOKEN))
    assert r.status_code == 200, r.text
    r = ingest.post("/webhooks/mailjet", raw=b"[]", params={"token": TOKEN})
    assert r.status_code == 200  # empty: answered, nothing written
    recs = ingest.records("mailjet", run)
    assert [(r.key.decode(), r.value) for r in recs] == [(f"mj.{run}@example.com", mj)]

    # CleverTap: path campaign id -> header `campaign_id`; body form without path -> no header
    ct_path = {"targetId": 1, "key_values": {"plan": "gold"},
               "profiles": [{"Email": f"CT.{run}@Example.com", "objectId": "ct-1"},
                            {"Email": "second@example.com"}]}
    raw_path = orjson.dumps(ct_path)
    r = ingest.post("/webhooks/clevertap/cmp-42", raw=raw_path, params={"token": TOKEN})
    assert r.status_code == 200, r.text
    ct_body = {"email": f"ct2.{run}@example.com", "campaign_id": "cmp-7", "data": {"a": 1}}
    r = ingest.post("/webhooks/clevertap", ct_body, auth=BEARER)
    assert r.status_code == 200, r.text
    recs = [(k.decode(), v, h) for k, v, h in read_with_headers(
        ingest.bootstrap, ingest.topic("clevertap")) if k and run in k.decode()]
    assert sorted(recs, key=lambda x: x[0]) == [
        (f"ct.{run}@example.com", raw_path, {"campaign_id": "cmp-42"}),
        (f"ct2.{run}@example.com", orjson.dumps(ct_body), {})]


# ---------------------------------------------------------------------------- refusals


def test_auth_failures_are_401(ingest):
    run = f"auth-{uuid.uuid4().hex[:8]}"
    msg = {"userId": run, "event": "E"}
    for auth, body in [(None, msg), (basic("wrong"), msg), (None, {**msg, "writeKey": "wrong"}),
                       (basic("wrong"), {**msg, "writeKey": WRITE_KEY}),
                       (f"Bearer {WRITE_KEY}", msg), (None, b"not json")]:
        if isinstance(body, bytes):
            r = ingest.post("/v1/track", raw=body, auth=auth)
        else:
            r = ingest.post("/v1/track", body, auth=auth)
        assert r.status_code == 401, (auth, body, r.text)
        assert r.json()["success"] is False and r.json()["error"]
    assert ingest.post("/v1/batch", {"batch": [{**msg, "type": "track"}]}).status_code == 401
    for path in ("/webhooks/mailmodo", "/webhooks/mailjet", "/webhooks/clevertap/c1"):
        for auth, params in [(None, None), ("Bearer nope", None), (basic(TOKEN, ""), None),
                             (None, {"token": TOKEN + "x"})]:
            r = ingest.post(path, {"email": f"{run}@example.com", "event": "open"}, auth=auth,
                            params=params)
            assert r.status_code == 401, (path, auth, params)
            assert r.json()["error"]
    assert ingest.records("segment", run) == []
    assert ingest.records("mailmodo", run) == []


def test_size_limits(ingest):
    run = f"big-{uuid.uuid4().hex[:8]}"
    r = ingest.post("/v1/track", {"userId": run, "event": "E", "properties": {"p": "x" * 40_000}},
                    auth=SEG)
    assert (r.status_code, r.json()["code"]) == (400, "oversize")
    batch = {"batch": [{"type": "track", "userId": run, "event": "E",
                        "properties": {"p": "x" * 30_000}}] * 20}  # ~600 KB > 500 KB
    r = ingest.post("/v1/batch", batch, auth=SEG)
    assert (r.status_code, r.json()["code"]) == (400, "payload_too_large")
    r = ingest.post("/v1/batch", raw=gzip.compress(orjson.dumps(batch)), auth=SEG,
                    headers={"Content-Encoding": "gzip"})  # small on the wire, big inflated
    assert (r.status_code, r.json()["code"]) == (400, "payload_too_large")
    r = ingest.post("/v1/batch", {"batch": batch["batch"][:5]}, auth=SEG)  # 150 KB > MAX_BODY
    assert r.status_code == 413
    big = {"event": "open", "email": f"{run}@example.com", "pad": "x" * MAX_BODY}
    for path in ("/webhooks/mailmodo", "/webhooks/mailjet", "/webhooks/clevertap/c1"):
        r = ingest.post(path, big, auth=BEARER)
        assert r.status_code == 413, (path, r.text)
        assert r.json()["error"]
    r = ingest.post("/webhooks/mailjet", raw=gzip.compress(orjson.dumps([big])), auth=BEARER,
                    headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413, r.text
    assert ingest.records("segment", run) == []


def test_non_json_is_400(ingest):
    for path, auth in [("/v1/track", SEG), ("/v1/batch", SEG), ("/webhooks/mailmodo", BEARER),
                       ("/webhooks/mailjet", BEARER), ("/webhooks/clevertap/c1", BEARER)]:
        for raw in (b"{not json", b"", b"\xff\xfe"):
            r = ingest.post(path, raw=raw, auth=auth)
            assert r.status_code == 400, (path, raw, r.text)
            assert r.json()["error"]
        r = ingest.post(path, raw=b"\x1f\x8bnot gzip", auth=auth,
                        headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400, (path, r.text)
    for path in ("/v1/track", "/webhooks/mailmodo", "/webhooks/clevertap"):
        r = ingest.post(path, raw=b"42", auth=SEG if path.startswith("/v1") else BEARER)
        assert r.status_code == 400, path


def test_requests_are_counted(ingest):
    assert ingest.post("/webhooks/mailjet", raw=b"[]", auth=BEARER).status_code == 200
    assert ingest.post("/webhooks/mailjet", raw=b"[]").status_code == 401
    text = ingest.worker.metrics()
    for endpoint, status in (("webhooks.mailjet", "200"), ("webhooks.mailjet", "401")):
        line = re.search(r'^streamproc_ingest_requests_total\{endpoint="%s",status="%s"\} (\S+)$'
                         % (re.escape(endpoint), status), text, re.M)
        assert line and float(line.group(1)) >= 1, (endpoint, status, text[-2000:])
