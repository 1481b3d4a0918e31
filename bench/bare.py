"""The ceiling for Python here: a bare aiokafka loop over the same raw records, in its own
process. consume (one consumer, all raw topics) -> orjson.loads -> trivial routing (a dict of
userId -> email as the only state) -> sink-record-shaped outputs -> produce (acks=all,
idempotent, like streamproc's OutputProducer) with send_batch or send -> await acks -> commit.
It emits about as many outputs as streamproc's routing does for the same records.

    python -m bench.bare --bootstrap H:P --topics a,b,c,d --out T --group G [--mode batch|send]

prints one JSON line: inputs, outputs, seconds and cpu_s (first record fetched -> last commit)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

CT_SKIP = {"sent"}


def route(source: str, value: bytes, users: dict[str, str], now: float) -> list[tuple[bytes, bytes]]:
    """Trivial routing with the same fan-out as streamproc's: (key, value) outputs."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [(b"dlq", orjson.dumps({"reason": "not_json", "original": value.decode("latin-1")}))]
    out = []
    if source == "segment":
        uid = doc.get("userId")
        t = doc.get("type")
        if t == "identify":
            email = (doc.get("traits") or {}).get("email")
            if email:
                users[uid] = email
                for dest in ("mailmodo", "mailjet"):
                    out.append(_rec(dest, "contact_upsert", email.lower(), doc["messageId"],
                                    {"email": email, "traits": doc["traits"]}, now))
        elif t == "track":
            email = users.get(uid)
            if email:
                out.append(_rec("mailmodo", "add_event", email.lower(), doc["messageId"],
                                {"email": email, "event_name": doc["event"],
                                 "ts": doc["timestamp"], "properties": doc.get("properties")}, now))
    elif source == "mailmodo":
        email = doc["email"]
        out.append(_rec("segment", "track", email, doc["event_id"],
                        {"message": {"type": "track", "event": doc["event"], "properties": doc}}, now))
        ct = doc.get("clevertap_id")
        if ct and doc["event"] not in CT_SKIP:
            out.append(_rec("clevertap", "event", ct, doc["event_id"],
                            {"object_id": ct, "evt_name": doc["event"], "evt_data": doc}, now))
            if doc["event"] == "form_submitted":
                out.append(_rec("clevertap", "event", ct, doc["event_id"] + ":form",
                                {"object_id": ct, "evt_data": doc.get("form_responses")}, now))
    elif source == "mailjet":
        for item in doc if isinstance(doc, list) else [doc]:
            if item.get("event") != "blocked":
                out.append(_rec("segment", "track", item["email"], str(item["MessageID"]),
                                {"message": {"type": "track", "event": item["event"],
                                             "properties": item}}, now))
    elif source == "clevertap":
        out.append(_rec("mailmodo", "trigger_campaign", doc["email"], doc["campaign_id"],
                        {"email": doc["email"], "data": doc.get("data")}, now))
    return out


def _rec(dest: str, op: str, key: str, source_id: str, payload: Any, now: float,
         ) -> tuple[bytes, bytes]:
    return key.encode(), orjson.dumps({
        "id": f"{source_id}:{dest}:{op}", "destination": dest, "op": op, "key": key,
        "payload": payload, "source": {"message_id": source_id}, "created_at": now})


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sources = dict(item.split("=", 1) for item in args.topics.split(","))  # topic -> source
    consumer = AIOKafkaConsumer(*sources, bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5,
                                max_batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    await consumer.start()
    await producer.start()
    users: dict[str, str] = {}
    n_in = n_out = 0
    t_first = None
    cpu_first = 0.0
    try:
        out_parts = sorted(await producer.partitions_for(args.out))
        partitioner = DefaultPartitioner()
        tps = [TopicPartition(t, p) for t in sources
               for p in consumer.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(tps)
        total = sum(ends.values())
        while n_in < total:
            batch = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            if not batch:
                continue
            if t_first is None:
                t_first = time.monotonic()
                cpu_first = _cpu()
            now = time.time()
            outs: list[tuple[bytes, bytes]] = []
            for tp, msgs in batch.items():
                source = sources[tp.topic]
                for m in msgs:
                    outs += route(source, m.value, users, now)
                n_in += len(msgs)
            futs = []
            if args.mode == "send":
                for key, value in outs:
                    futs.append(await producer.send(args.out, value=value, key=key))
            else:
                open_batches: dict[int, Any] = {}
                for key, value in outs:
                    p = partitioner(key, out_parts, out_parts)
                    b = open_batches.get(p)
                    if b is None:
                        b = open_batches[p] = producer.create_batch()
                    if b.append(key=key, value=value, timestamp=None) is None:
                        futs.append(await producer.send_batch(b, args.out, partition=p))
                        b = open_batches[p] = producer.create_batch()
                        b.append(key=key, value=value, timestamp=None)
                for p, b in open_batches.items():
                    futs.append(await producer.send_batch(b, args.out, partition=p))
            await asyncio.gather(*futs)
            n_out += len(outs)
            await consumer.commit()
        took = time.monotonic() - (t_first or time.monotonic())
    finally:
        await producer.stop()
        await consumer.stop()
    cpu = _cpu() - cpu_first
    return {"mode": args.mode, "inputs": n_in, "outputs": n_out, "seconds": round(took, 3),
            "events_per_s": round(n_in / took, 1) if took else None,
            "cpu_s": round(cpu, 3)}


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True, help="topic=source,... (source: segment, ...)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--mode", choices=("batch", "send"), default="batch")
    ap.add_argument("--max-records", type=int, default=2000)
    args = ap.parse_args()
    print(orjson.dumps(asyncio.run(run(args))).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
