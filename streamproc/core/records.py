"""The records streamproc writes to Kafka: sink records (normalised, per destination) and
dead-letter records. Both are plain JSON objects; this module owns their shape and ids."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

# Destination slugs. Sink topics, settings and the Segment `integrations` names hang off these.
MAILMODO = "mailmodo"
SEGMENT = "segment"
CLEVERTAP = "clevertap"
MAILJET = "mailjet"
DESTINATIONS = (MAILMODO, SEGMENT, CLEVERTAP, MAILJET)

# Largest record streamproc writes itself (re-keyed events, dead letters): below the broker's
# default message.max.bytes (1048588) with room for the batch overhead. A larger record would
# be refused by the broker for good, and retrying it would stall the agent that wrote it.
MAX_RECORD_BYTES = 900_000

# The name a destination has in a Segment `integrations` object (case-sensitive).
INTEGRATION_NAMES = {
    MAILMODO: "Mailmodo",
    SEGMENT: "Segment",
    CLEVERTAP: "CleverTap",
    MAILJET: "Mailjet",
}

# Sink record operations, one per API operation.
OP_CONTACT_UPSERT = "contact_upsert"  # mailmodo: addToList(/batch); mailjet: managecontact
OP_ADD_EVENT = "add_event"  # mailmodo: addEvent
OP_TRIGGER_CAMPAIGN = "trigger_campaign"  # mailmodo: triggerCampaign/{id}
OP_TRACK = "track"  # segment: /v1/batch message of type track
OP_EVENT = "event"  # clevertap: /1/upload event record


def delivery_id(source_id: str, destination: str, op: str, part: str = "") -> str:
    """Deterministic id of one outgoing record: same source message + destination + op
    (+ part, for sources fanning out to several records) always gives the same id."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{source_id}\x1f{destination}\x1f{op}\x1f{part}".encode())
    return h.hexdigest()


@dataclass(slots=True)
class SinkRecord:
    """A normalised record on a destination's sink topic (not an HTTP request).

    payload by (destination, op):
      mailmodo/contact_upsert:   {email, traits{...}}            traits as Segment sent them (merged)
      mailmodo/add_event:        {email, event_name, ts, properties{...}}
      mailmodo/trigger_campaign: {email, campaign_id, data{...}, campaign_data{...}}
      mailjet/contact_upsert:    {email, name?, traits{...}}
      segment/track:             {message{type:"track", event, properties, userId|anonymousId,
                                  context, timestamp, messageId, integrations}}
      clevertap/event:           {object_id, evt_name, evt_data{...}, ts}
    """

    destination: str
    op: str
    key: str  # partition key: the input's own by-user or by-contact key (never from state),
    #           so a replay finds the delivery id in the same ledger partition
    id: str  # delivery id (see delivery_id)
    payload: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)  # {topic, partition, offset, message_id}
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "destination": self.destination,
            "op": self.op,
            "key": self.key,
            "payload": self.payload,
            "source": self.source,
            "created_at": self.created_at,
        }

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SinkRecord:
        return cls(
            destination=d["destination"],
            op=d["op"],
            key=d["key"],
            id=d["id"],
            payload=d["payload"],
            source=d.get("source") or {},
            created_at=d.get("created_at") or 0.0,
        )

    @classmethod
    def loads(cls, raw: bytes) -> SinkRecord:
        d = orjson.loads(raw)
        if not isinstance(d, dict):
            raise ValueError("sink record is not a JSON object")
        return cls.from_dict(d)


def dead_letter(
    *,
    stage: str,
    reason: str,
    message: str,
    original: bytes | None,
    source: dict[str, Any],
    destination: str | None = None,
    record: dict[str, Any] | None = None,
    status: int | None = None,
    response_excerpt: str | None = None,
    attempts: int = 0,
    first_attempt_at: float | None = None,
    last_attempt_at: float | None = None,
) -> bytes:
    """One dead-letter record (JSON bytes). `original` bytes are kept exactly, as latin-1
    text when they are not UTF-8 (flagged by original_encoding); only when the record would
    exceed MAX_RECORD_BYTES is a prefix kept instead (see _truncate_original)."""
    doc: dict[str, Any] = {
        "stage": stage,  # "ingest" (could not parse) or "delivery" (could not deliver)
        "reason": reason,  # machine-readable code, e.g. not_json, http_400, retries_exhausted
        "message": message,  # human-readable
        "source": source,
        "destination": destination,
        "dead_lettered_at": time.time(),
    }
    if original is not None:
        try:
            doc["original"] = original.decode("utf-8")
            doc["original_encoding"] = "utf-8"
        except UnicodeDecodeError:
            doc["original"] = original.decode("latin-1")
            doc["original_encoding"] = "latin-1"
    if record is not None:
        doc["record"] = record
    if status is not None:
        doc["status"] = status
    if response_excerpt is not None:
        doc["response_excerpt"] = response_excerpt[:2000]
    if attempts:
        doc["attempts"] = attempts
        doc["first_attempt_at"] = first_attempt_at
        doc["last_attempt_at"] = last_attempt_at
    out = orjson.dumps(doc)
    if len(out) > MAX_RECORD_BYTES and original is not None:
        out = _truncate_original(doc, original, len(out))
    return out


def _truncate_original(doc: dict[str, Any], original: bytes, size: int) -> bytes:
    """The dead letter would not fit in a Kafka record: keep a prefix of the original, with
    its full size and sha256, flagged `original_truncated` (original_bytes() gives None)."""
    doc["original_truncated"] = True
    doc["original_size"] = len(original)
    doc["original_sha256"] = hashlib.sha256(original).hexdigest()
    encoding = doc["original_encoding"]
    keep = len(original)
    while True:
        keep = int(keep * MAX_RECORD_BYTES / size * 0.9)
        prefix = original[:keep]
        doc["original"] = (prefix.decode("utf-8", "ignore") if encoding == "utf-8"
                           else prefix.decode("latin-1"))
        out = orjson.dumps(doc)
        size = len(out)
        if size <= MAX_RECORD_BYTES:
            return out


def original_bytes(dlq_doc: dict[str, Any]) -> bytes | None:
    """The exact original bytes of a dead-letter record written by dead_letter(); None when
    there are none, or only a truncated prefix (`original_truncated`: too large to keep)."""
    text = dlq_doc.get("original")
    if text is None or dlq_doc.get("original_truncated"):
        return None
    return text.encode(dlq_doc.get("original_encoding", "utf-8"))
