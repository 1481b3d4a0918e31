"""`streamproc dlq list|redrive` and `streamproc replay` on the real broker, against a real
worker process and the sandbox APIs: what the fakes receive is the proof."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamproc.dev.sandbox import Fault

from harness import ROOT, produce, read_topic, wait_for


def cli(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(STREAMPROC_KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
               STREAMPROC_TOPIC_PREFIX=stack.prefix,
               STREAMPROC_TOPICS_FILE=str(ROOT / "topics.yaml"),
               STREAMPROC_APP_ID=f"{stack.prefix}app")  # the workers' app id (ledger changelog)
    return subprocess.run([sys.executable, "-m", "streamproc", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res.stdout


def json_lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def identify(user, email, mid, **traits):
    return {"type": "identify", "userId": user, "messageId": mid,
            "timestamp": "2026-11-20T10:00:00Z", "traits": {"email": email, **traits}}


def track(user, mid):
    return {"type": "track", "userId": user, "messageId": mid, "timestamp": "2026-11-20T11:00:00Z",
            "event": "Order Completed", "properties": {"order_id": mid}}


def events_by_order(mailmodo) -> Counter:
    """Accepted /addEvent calls per order_id."""
    return Counter(r.body["event_properties"].get("order_id")
                   for r in mailmodo.requests("/addEvent", status=200))


def upserts(fake, email: str) -> int:
    """Accepted contact upserts of one email (Mailmodo addToList[/batch], Mailjet managecontact)."""
    if fake.name == "mailjet":
        return sum(1 for op in fake.operations if op["Email"] == email)
    n = 0
    for r in fake.requests("/addToList*", status=200):
        values = r.body.get("values", [r.body])
        n += sum(1 for v in values if v.get("email") == email)
    return n


def read_with_headers(bootstrap: str, topic: str) -> list:
    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
        await c.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(6)]
            c.assign(tps)
            end = await c.end_offsets(tps)
            out = []
            deadline = time.monotonic() + 30
            while [tp for tp in tps if await c.position(tp) < end[tp]]:
                assert time.monotonic() < deadline, f"could not read {topic} to its end"
                for msgs in (await c.getmany(timeout_ms=500)).values():
                    out += msgs
            return sorted(out, key=lambda m: (m.timestamp, m.offset))
        finally:
            await c.stop()

    return asyncio.run(run())


def produce_with_headers(bootstrap, topic, key, value, headers):
    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            await p.send_and_wait(topic, orjson.dumps(value), key=key.encode(), headers=headers)
        finally:
            await p.stop()

    asyncio.run(run())


def test_dlq_list_and_redrive(stack):
    mm = stack.sandbox["mailmodo"]
    mm.script("/addEvent", [Fault.status(400, body={"success": False, "message": "bad"})])
    w = stack.worker()
    w.wait_ready()
    produce(stack.bootstrap, stack.topic("segment"), [
        ("user-1", identify("user-1", "ada@example.com", "m-1")),
        ("user-1", track("user-1", "t-1")),
        ("bad-1", b"this is not json"),
    ])
    # a CleverTap trigger with a bad email; its campaign id only in the record header
    produce_with_headers(stack.bootstrap, stack.topic("clevertap"), "ct-1",
                         {"email": "not-an-email", "data": {"x": "1"}},
                         [("campaign_id", b"cmp-42")])
    dead = read_topic(stack.bootstrap, stack.topic("dlq.mailmodo"), min_count=1, timeout=60)
    assert len(dead) == 1
    read_topic(stack.bootstrap, stack.topic("dead_letter"), min_count=2, timeout=60)
    assert mm.requests("/addEvent", status=400) and not mm.requests("/addEvent", status=200)

    # list: JSON lines, filters
    lines = json_lines(ok(cli(stack, "dlq", "list", "--json", "--destination", "mailmodo")))
    assert len(lines) == 1
    doc = lines[0]
    assert doc["dlq"]["destination"] == "mailmodo" and doc["stage"] == "delivery"
    assert doc["status"] == 400 and doc["attempts"] >= 1 and doc["reason"] == "http_400"
    assert doc["record"]["op"] == "add_event" and '"bad"' in doc["response_excerpt"]
    record_id = doc["record"]["id"]

    everything = json_lines(ok(cli(stack, "dlq", "list", "--json")))
    assert sorted(d["reason"] for d in everything) == sorted(["http_400", "not_json", "bad_email"])
    table = ok(cli(stack, "dlq", "list"))
    assert "TIME" in table.splitlines()[0] and "DESTINATION" in table.splitlines()[0]
    row = next(line for line in table.splitlines() if record_id in line)
    assert "mailmodo" in row and "http_400" in row and " 400 " in row
    assert any("ingest/segment" in line and "not_json" in line for line in table.splitlines())
    assert json_lines(ok(cli(stack, "dlq", "list", "--json", "--destination", "segment"))) == []
    assert [d["reason"] for d in json_lines(ok(cli(
        stack, "dlq", "list", "--json", "--reason", "not_json")))] == ["not_json"]
    assert json_lines(ok(cli(stack, "dlq", "list", "--json", "--since", str(time.time() + 60)))) == []
    assert json_lines(ok(cli(stack, "dlq", "list", "--json", "--until", "2020-01-01T00:00:00Z"))) == []
    assert len(json_lines(ok(cli(stack, "dlq", "list", "--json", "--since", "1h")))) == 3
    limited = cli(stack, "dlq", "list", "--json", "--limit", "1")
    assert len(json_lines(ok(limited))) == 1 and "2 more match" in limited.stderr
    bad = cli(stack, "dlq", "list", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since" in bad.stderr

    # the fake is fixed (its one scripted fault is used up): redrive delivers the event once
    assert mm.pending_faults() == 0
    out = ok(cli(stack, "dlq", "redrive", "--destination", "mailmodo"))
    assert "re-driven 1 record(s) (delivery 1)" in out
    wait_for(lambda: events_by_order(mm)["t-1"] == 1, timeout=30, what="redriven addEvent")

    # a second redrive is skipped by the ledger: t-2 (same key, so same sink partition,
    # behind the re-driven copy) is the barrier that proves the copy was handled
    ok(cli(stack, "dlq", "redrive", "--destination", "mailmodo"))
    produce(stack.bootstrap, stack.topic("segment"), [("user-1", track("user-1", "t-2"))])
    wait_for(lambda: events_by_order(mm)["t-2"] == 1, timeout=30, what="t-2 delivered")
    assert events_by_order(mm) == Counter({"t-1": 1, "t-2": 1})
    sink_ids = [r.json()["id"] for r in read_topic(stack.bootstrap, stack.topic("sink.mailmodo"),
                                                   min_count=5, settle=0.5)]
    assert sink_ids.count(record_id) == 3  # routed once, re-driven twice: sent once
    assert len(read_topic(stack.bootstrap, stack.topic("dlq.mailmodo"), settle=0.5)) == 1

    # ingest redrive: original bytes, key, and the header that only the raw record held
    out = ok(cli(stack, "dlq", "redrive", "--destination", "ingest", "--reason", "bad_email"))
    assert "re-driven 1 record(s) (ingest 1)" in out
    raw = read_with_headers(stack.bootstrap, stack.topic("clevertap"))
    assert len(raw) == 2
    assert raw[1].key == b"ct-1" and raw[1].value == raw[0].value
    assert raw[1].partition == raw[0].partition and raw[1].offset == raw[0].offset + 1
    assert ("campaign_id", b"cmp-42") in list(raw[1].headers)
    assert raw[1].timestamp == raw[0].timestamp
    # still a bad email: the worker dead-letters it again
    read_topic(stack.bootstrap, stack.topic("dead_letter"), min_count=3, timeout=60)


def test_replay_input_sink_force_and_dry_run(stack):
    mm, mj = stack.sandbox["mailmodo"], stack.sandbox["mailjet"]
    w = stack.worker()
    w.wait_ready()
    seg = stack.topic("segment")
    produce(stack.bootstrap, seg, [
        ("u-a", identify("u-a", "a@example.com", "ia")),
        ("u-a", track("u-a", "t-a1")), ("u-a", track("u-a", "t-a2"))])
    wait_for(lambda: events_by_order(mm)["t-a2"] == 1 and upserts(mj, "a@example.com") == 1,
             timeout=60, what="batch A delivered")
    time.sleep(0.3)
    t1 = time.time()
    time.sleep(0.3)
    produce(stack.bootstrap, seg, [
        ("u-b", identify("u-b", "b@example.com", "ib")),
        ("u-b", track("u-b", "t-b1")), ("u-b", track("u-b", "t-b2"))])
    wait_for(lambda: events_by_order(mm)["t-b2"] == 1 and upserts(mj, "b@example.com") == 1,
             timeout=60, what="batch B delivered")
    time.sleep(0.3)
    t2 = time.time()
    time.sleep(0.3)
    window = ["--from-time", f"{t1:.3f}", "--to-time", f"{t2:.3f}"]
    sink_before = read_topic(stack.bootstrap, stack.topic("sink.mailmodo"), min_count=6, settle=0.5)
    b_ids = sorted(r.json()["id"] for r in sink_before if r.key == b"u-b")
    assert len(sink_before) == 6 and len(b_ids) == 3
    assert upserts(mm, "b@example.com") == 1

    # dry runs change nothing
    out = ok(cli(stack, "replay", "segment", *window, "--dry-run"))
    assert "3 record(s) in range" in out and "would re-ingest 3 record(s): 3 event(s)" in out
    assert "track 2" in out and "identify 1" in out and "nothing was produced" in out

    def sink_dry_run():
        return ok(cli(stack, "replay", "sink.mailmodo", *window, "--dry-run"))

    out = wait_for(lambda: (o := sink_dry_run()) and "3 of the 3 id(s)" in o and o,
                   timeout=20, what="the ledger changelog to hold batch B")
    assert "3 sink record(s), 3 distinct delivery id(s)" in out
    assert "would re-send to mailmodo: 0 (skipped by the ledger: 3)" in out
    out = ok(cli(stack, "replay", "sink.mailmodo", *window, "--dry-run", "--force"))
    assert "would re-send to mailmodo: 3 (--force; 3 of them again)" in out
    assert len(read_topic(stack.bootstrap, seg, settle=0.3)) == 6
    assert len(read_topic(stack.bootstrap, stack.topic("sink.mailmodo"), settle=0.3)) == 6

    # input replay of batch B only: re-routed with the same ids, and nothing re-sent
    out = ok(cli(stack, "replay", "segment", *window))
    assert "re-produced 3 record(s)" in out
    sink = wait_for(lambda: (r := read_topic(stack.bootstrap, stack.topic("sink.mailmodo"),
                                             settle=0.3)) and len(r) >= 9 and r,
                    timeout=60, what="re-routed sink records")
    assert len(sink) == 9
    assert sorted(r.json()["id"] for r in sink if r.key == b"u-b") == sorted(b_ids * 2)
    assert sum(1 for r in sink if r.key == b"u-a") == 3  # batch A not replayed
    # barrier: a new identify + track for u-b queue behind the replayed records (same keys)
    produce(stack.bootstrap, seg, [("u-b", identify("u-b", "b@example.com", "ib2", plan="pro")),
                                   ("u-b", track("u-b", "t-b3"))])
    wait_for(lambda: events_by_order(mm)["t-b3"] == 1 and upserts(mj, "b@example.com") == 2,
             timeout=60, what="barrier delivered")
    assert events_by_order(mm) == Counter({"t-a1": 1, "t-a2": 1, "t-b1": 1, "t-b2": 1, "t-b3": 1})
    assert upserts(mm, "b@example.com") == 2 and upserts(mm, "a@example.com") == 1
    assert upserts(mj, "b@example.com") == 2 and upserts(mj, "a@example.com") == 1

    # forced sink replay over the same window: batch B's Mailmodo records are sent again
    out = ok(cli(stack, "replay", "sink.mailmodo", *window, "--force"))
    assert "re-produced 3 record(s)" in out and "streamproc-force: 1" in out
    wait_for(lambda: events_by_order(mm)["t-b2"] == 2 and upserts(mm, "b@example.com") == 3,
             timeout=60, what="forced re-send")
    assert events_by_order(mm) == Counter({"t-a1": 1, "t-a2": 1, "t-b1": 2, "t-b2": 2, "t-b3": 1})
    assert upserts(mm, "a@example.com") == 1
    assert upserts(mj, "b@example.com") == 2  # Mailjet was not part of it

    # input + --destination: replays that sink over the window instead (and says so)
    out = ok(cli(stack, "replay", "segment", *window, "--destination", "mailjet", "--dry-run"))
    assert "note: --destination with input segment: replaying sink.mailjet" in out
    assert "would re-send to mailjet: 0 (skipped by the ledger: 1)" in out
    bad = cli(stack, "replay", "segment", "--from-offset", "0", "--force")
    assert bad.returncode == 2 and "--from-time" in bad.stderr
