"""The ceiling for Python of streamproc's own dataflow: a bare aiokafka loop with the same hops,
records and state writes as the worker, and nothing else (no faust, no RocksDB, no metrics, no
validation beyond what routing needs).

bench/bare.py is one hop: raw -> sink, with a dict of userId -> email as its only state. The
worker cannot do that and keep its promises: producers may key badly, so every input is
re-keyed through a repartition topic before the state that needs its key (the spec's
"streamproc re-keys (repartitions) by the key its state needs"), and every state change is a
changelog record so that state survives restarts and moves with its partitions. Per input the
worker therefore consumes about two records and produces about three (repartition, sink,
changelog), where the one-hop loop consumes one and produces one.

This loop does exactly that, in one process with one consumer, as the worker does:

- raw record -> orjson.loads -> re-key (userId else anonymousId; the email for activity) ->
  orjson.dumps({source, doc}) to the by-user or by-contact topic;
- by-user record -> state dict of the user (emails, last seen) -> one changelog record per
  changed user per batch -> Mailmodo / Mailjet sink records, and a contact update to
  by-contact for an identify with an email;
- by-contact record -> state dict of the contact (identified, CleverTap id, last seen) ->
  one changelog record per changed contact per batch -> Segment / CleverTap / Mailmodo sink
  records (the gates of routes 8-11);
- every output of a fetched batch as record batches per partition (send_batch, acks=all,
  idempotent), awaited, then the offsets committed.

    python -m bench.bare_pipeline --bootstrap H:P --topics a=segment,... --by-user T
        --by-contact T --changelog T --out T --group G --total N

prints one JSON line: inputs, records consumed, outputs per kind, seconds and cpu_s (first
record fetched -> last output acknowledged)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.bare import CT_SKIP, _cpu, _rec
from streamproc.worker.output import key_hash

Out = tuple[str, bytes, bytes]  # (topic, key, value)


class Pipeline:
    def __init__(self, sources: dict[str, str], by_user: str, by_contact: str, changelog: str,
                 out: str) -> None:
        self.sources, self.by_user, self.by_contact = sources, by_user, by_contact
        self.changelog, self.out = changelog, out
        self.users: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.counts = {"repartition": 0, "sink": 0, "changelog": 0, "dead_letter": 0}

    # hop 1: raw -> repartition topics
    def ingest(self, source: str, value: bytes, outs: list[Out]) -> None:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            outs.append((self.out, b"dlq", orjson.dumps(
                {"reason": "not_json", "original": value.decode("latin-1")})))
            self.counts["dead_letter"] += 1
            return
        if source == "segment":
            key = doc.get("userId") or doc.get("anonymousId") or ""
            topic = self.by_user
        elif source == "mailjet":
            for item in doc if isinstance(doc, list) else [doc]:
                outs.append((self.by_contact, item["email"].lower().encode(),
                             orjson.dumps({"source": source, "doc": item})))
            self.counts["repartition"] += len(doc) if isinstance(doc, list) else 1
            return
        else:
            key = doc["email"].lower()
            topic = self.by_contact
        outs.append((topic, key.encode(), orjson.dumps({"source": source, "doc": doc})))
        self.counts["repartition"] += 1

    # hop 2: by-user -> users state, sinks, contact updates
    def user(self, key: bytes, value: bytes, now: float, outs: list[Out],
             dirty: dict[tuple[str, str], Any]) -> None:
        doc = orjson.loads(value)["doc"]
        uid = key.decode()
        t = doc.get("type")
        user = self.users.get(uid)
        if t == "identify":
            email = (doc.get("traits") or {}).get("email")
            if not email:
                return
            if user is None:
                user = self.users[uid] = {"emails": [], "traits": {}, "last_seen": None}
            if email not in user["emails"]:
                user["emails"].append(email)
            user["traits"].update(doc.get("traits") or {})
            user["last_seen"] = doc.get("timestamp")
            dirty[("users", uid)] = user
            for dest in ("mailmodo", "mailjet"):
                outs.append((self.out, *_rec(dest, "contact_upsert", email.lower(),
                                             doc["messageId"], {"email": email,
                                                                "traits": user["traits"]}, now)))
            outs.append((self.by_contact, email.lower().encode(), orjson.dumps(
                {"source": "contact_update", "doc": {"email": email, "user_id": uid}})))
            self.counts["repartition"] += 1
            self.counts["sink"] += 2
        elif t == "track" and user is not None and user["emails"]:
            user["last_seen"] = doc.get("timestamp")
            dirty[("users", uid)] = user
            email = user["emails"][-1]
            outs.append((self.out, *_rec("mailmodo", "add_event", email.lower(), doc["messageId"],
                                         {"email": email, "event_name": doc["event"],
                                          "ts": doc["timestamp"],
                                          "properties": doc.get("properties")}, now)))
            self.counts["sink"] += 1

    # hop 3: by-contact -> contacts state, sinks
    def contact(self, key: bytes, value: bytes, now: float, outs: list[Out],
                dirty: dict[tuple[str, str], Any]) -> None:
        msg = orjson.loads(value)
        source, doc = msg["source"], msg["doc"]
        email = key.decode()
        contact = self.contacts.get(email)
        if contact is None:
            contact = self.contacts[email] = {"user_id": None, "identified": False,
                                              "clevertap_id": None, "last_seen": None}
        dirty[("contacts", email)] = contact
        n0 = len(outs)
        if source == "contact_update":
            contact["user_id"], contact["identified"] = doc["user_id"], True
        elif source == "clevertap":
            contact["clevertap_id"] = doc.get("clevertap_id")
            outs.append((self.out, *_rec("mailmodo", "trigger_campaign", email,
                                         doc["campaign_id"], {"email": doc["email"],
                                                              "data": doc.get("data")}, now)))
        elif source == "mailmodo":
            contact["last_seen"] = doc.get("timestamp")
            ct = doc.get("clevertap_id") or contact["clevertap_id"]
            if contact["identified"]:
                outs.append((self.out, *_rec("segment", "track", email, doc["event_id"], {
                    "message": {"type": "track", "userId": contact["user_id"],
                                "event": doc["event"], "properties": doc}}, now)))
            if ct and doc["event"] not in CT_SKIP:
                outs.append((self.out, *_rec("clevertap", "event", ct, doc["event_id"], {
                    "object_id": ct, "evt_name": doc["event"], "evt_data": doc}, now)))
                if doc["event"] == "form_submitted":
                    outs.append((self.out, *_rec("clevertap", "event", ct,
                                                 doc["event_id"] + ":form",
                                                 {"object_id": ct,
                                                  "evt_data": doc.get("form_responses")}, now)))
        elif source == "mailjet" and doc.get("event") != "blocked":
            contact["last_seen"] = doc.get("time")
            outs.append((self.out, *_rec("segment", "track", email, str(doc["MessageID"]), {
                "message": {"type": "track", "userId": contact["user_id"],
                            "anonymousId": None if contact["user_id"] else email,
                            "event": doc["event"], "properties": doc}}, now)))
        self.counts["sink"] += len(outs) - n0

    def handle(self, batch: dict[TopicPartition, list[Any]], now: float) -> list[Out]:
        outs: list[Out] = []
        dirty: dict[tuple[str, str], Any] = {}
        for tp, msgs in batch.items():
            topic = tp.topic
            if topic == self.by_user:
                for m in msgs:
                    self.user(m.key, m.value, now, outs, dirty)
            elif topic == self.by_contact:
                for m in msgs:
                    self.contact(m.key, m.value, now, outs, dirty)
            else:
                source = self.sources[topic]
                for m in msgs:
                    self.ingest(source, m.value, outs)
        for (table, key), state in dirty.items():  # one changelog record per changed key
            outs.append((self.changelog, f"{table}:{key}".encode(), orjson.dumps(state)))
        self.counts["changelog"] += len(dirty)
        return outs


async def send_batches(producer: AIOKafkaProducer, outs: list[Out],
                       parts_of: dict[str, list[int]]) -> list[Any]:
    """Every output as record batches per partition (murmur2 of the key, as the worker)."""
    futs = []
    open_batches: dict[tuple[str, int], Any] = {}
    for topic, key, value in outs:
        parts = parts_of[topic]
        p = parts[key_hash(key) % len(parts)]
        b = open_batches.get((topic, p))
        if b is None:
            b = open_batches[(topic, p)] = producer.create_batch()
        if b.append(key=key, value=value, timestamp=None) is None:
            b.close()
            futs.append(await producer.send_batch(b, topic, partition=p))
            b = open_batches[(topic, p)] = producer.create_batch()
            b.append(key=key, value=value, timestamp=None)
    for (topic, p), b in open_batches.items():
        b.close()
        futs.append(await producer.send_batch(b, topic, partition=p))
    return futs


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sources = dict(item.split("=", 1) for item in args.topics.split(","))  # topic -> source
    pipe = Pipeline(sources, args.by_user, args.by_contact, args.changelog, args.out)
    consumer = AIOKafkaConsumer(*sources, args.by_user, args.by_contact,
                                bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5,
                                max_batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    await consumer.start()
    await producer.start()
    n_in = consumed = 0
    t_first = t_last = None
    cpu_first = cpu_last = 0.0
    try:
        parts_of = {t: sorted(await producer.partitions_for(t))
                    for t in (args.by_user, args.by_contact, args.changelog, args.out)}
        raw_tps = [TopicPartition(t, p) for t in sources
                   for p in consumer.partitions_for_topic(t) or ()]
        total = sum((await consumer.end_offsets(raw_tps)).values())
        idle_since = time.monotonic()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            if not batch:
                if n_in >= total and time.monotonic() - idle_since > args.idle_s:
                    break  # every input read and nothing left moving through the hops
                continue
            if t_first is None:
                t_first, cpu_first = time.monotonic(), _cpu()
            n = sum(len(ms) for ms in batch.values())
            consumed += n
            n_in += sum(len(ms) for tp, ms in batch.items() if tp.topic in sources)
            outs = pipe.handle(batch, time.time())
            if outs:
                await asyncio.gather(*await send_batches(producer, outs, parts_of))
            await consumer.commit()
            t_last, cpu_last = time.monotonic(), _cpu()
            idle_since = t_last
    finally:
        await producer.stop()
        await consumer.stop()
    took = (t_last or 0) - (t_first or 0)
    return {"mode": "pipeline", "inputs": n_in, "consumed": consumed, "outputs": pipe.counts,
            "seconds": round(took, 3), "events_per_s": round(n_in / took, 1) if took else None,
            "cpu_s": round(cpu_last - cpu_first, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True, help="topic=source,... (source: segment, ...)")
    ap.add_argument("--by-user", required=True)
    ap.add_argument("--by-contact", required=True)
    ap.add_argument("--changelog", required=True)
    ap.add_argument("--out", required=True, help="the sink records (one topic)")
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-records", type=int, default=2000)
    ap.add_argument("--idle-s", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    print(orjson.dumps(asyncio.run(run(args))).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
