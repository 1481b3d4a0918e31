"""Outcomes the operator commands write, so a trace shows an input sent again: `redrive`
(streamproc dlq redrive) and `replay` (streamproc replay), produced with their records."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, Iterable

import orjson

from streamproc.core.events.inputs import parse_input
from streamproc.core.outcome_codec import (decoded, envelope_id, message_id, pack_values,
                                           partition_hash, raw_message_id)


def outcomes_topic(topology: Any) -> Any:
    """The outcomes topic's spec (name, partitions) in topics.yaml, or None."""
    return topology.internal.get("outcomes")


def redrive_docs(plans: Iterable[Any]) -> list[dict[str, Any]]:
    """One `redrive` outcome per re-driven dead letter (dlq_redrive.Redrive plans)."""
    now = round(time.time(), 3)
    docs = []
    for p in plans:
        doc = p.entry.doc or {}
        rec = doc.get("record") or {}
        mid = (rec.get("source") or {}).get("message_id")
        src = doc.get("source") if isinstance(doc.get("source"), dict) else {}
        if not mid and doc.get("stage") == "routing":  # an envelope: as its dead outcome
            mid = envelope_id(SimpleNamespace(value=p.value, topic=src.get("topic"),
                                              partition=src.get("partition"),
                                              offset=src.get("offset")), decoded(p.value))
        elif not mid:  # an ingest dead letter: the original input is re-produced; under
            at = src if "topic" in src else {"topic": p.entry.topic,  # its own id, as its
                                             "partition": p.entry.partition,  # dead outcome
                                             "offset": p.entry.offset}  # (raw coordinates)
            mid = raw_message_id(SimpleNamespace(value=p.value, topic=at.get("topic"),
                                                 partition=at.get("partition"),
                                                 offset=at.get("offset")))
        docs.append({"k": "redrive", "m": str(mid), "t": now, "d": doc.get("destination"),
                     "id": rec.get("id"), "r": doc.get("reason"), "to": p.topic})
    return docs


def replay_docs(kind: str, source: str, m: Any, topic: str, forced: bool = False
                ) -> list[dict[str, Any]]:
    """The `replay` outcomes of one re-produced record (kind "input": `source` is the input's
    name; kind "sink": f 1 when --force re-sends it past the delivery ledger). An input's are
    under the ids its `in` and `route` outcomes have: its parsed events' (a Mailmodo,
    Mailjet or CleverTap input has no messageId field to read), and, for what could not be
    parsed, the id its ingest `dead` outcome has (raw_message_id)."""
    now = round(time.time(), 3)
    if kind == "sink":
        try:
            rec = orjson.loads(m.value)
            mid = rec["source"]["message_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return []
        doc = {"k": "replay", "m": str(mid), "t": now, "d": rec.get("destination"),
               "id": rec.get("id"), "to": topic}
        if forced:
            doc["f"] = 1
        return [doc]
    try:
        events, errors = parse_input(source, m)
    except Exception:  # noqa: BLE001 - an unknown source: the record's own id
        events, errors = [], [None]
    ids = list(dict.fromkeys(mid for mid in map(message_id, events) if mid))
    if errors or not ids:
        ids.append(raw_message_id(m))
    return [{"k": "replay", "m": mid, "t": now, "to": topic} for mid in ids]


async def send_docs(settings: Any, producer: Any, spec: Any,
                    docs: Iterable[dict[str, Any] | None]) -> None:
    """Produce outcome documents with an already started aiokafka producer to the outcomes
    topic of `spec` (outcomes_topic; nothing when STREAMPROC_OUTCOMES=off or no topic)."""
    docs = [d for d in docs if d]
    if not docs or spec is None or not settings.outcomes.enabled:
        return
    topic, n = spec.name, spec.partitions
    parts = sorted(await producer.partitions_for(topic))
    groups: dict[int, list[dict[str, Any]]] = {}
    for d in docs:  # JSON arrays per partition, the partition as the workers choose it
        # (Outcomes: crc32 % the partitions topics.yaml says; the producer: % the topic's)
        groups.setdefault(parts[partition_hash(d["m"]) % n % len(parts)], []).append(d)
    futs = [await producer.send(topic, value=value, partition=p)
            for p, group in groups.items() for value in pack_values(group)[0]]
    await asyncio.gather(*futs)
