"""Outcome records: what happened to each input (ingested, routed, dropped, held, each delivery
attempt, dead-lettered), small JSON objects on the outcomes topic that `streamproc trace` and
the status page read. Emails masked (setting), secrets scrubbed, response bodies truncated."""

from __future__ import annotations

import hashlib
import re
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable

import orjson

from streamproc.errors import AuthError, Permanent

if TYPE_CHECKING:
    from streamproc.app import Runtime
    from streamproc.output import Out

# Field names (compact: a few outcomes per input): k kind, m input message id, t unix time,
# d destination, id delivery id, n attempt number, s HTTP status, b response body excerpt,
# r result / reason. Kinds: in, route (with its drops and holds), try, dead (ingest or
# delivery), redrive, replay. The route outcome also carries u userId, h email hash.
FAILURES_KEPT = 20  # per destination, for the status page
PACKED = 500  # outcome documents per Kafka record at most (JSON array)

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_SECRET_FIELD = re.compile(
    r"""(["']?(?:api[_-]?key|apikey|x-api-key|token|access[_-]?token|secret|api[_-]?secret|"""
    r"""password|passcode|authorization|write[_-]?key)["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,&}]+)""",
    re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def partition_hash(message_id: str) -> int:
    """An input's outcomes go to partition partition_hash(message id) % partitions: crc32,
    since Kafka's murmur2 costs ~5 us per key in Python and crc32 0.1 us (the producer
    takes the partition as the fifth element of an Out, see Outcomes.pack)."""
    return zlib.crc32(message_id.encode())


def person_hash(email: str) -> str:
    """The lookup key of an email (trimmed, lowercased), kept even when emails are masked.
    Cached: a person's events recur (bounded, cleared when full)."""
    h = _HASHES.get(email)
    if h is None:
        if len(_HASHES) >= 100_000:
            _HASHES.clear()
        h = _HASHES[email] = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:20]
    return h


_HASHES: dict[str, str] = {}
_dumps, _crc32 = orjson.dumps, zlib.crc32


def encode_docs(docs: list[dict[str, Any]]) -> bytes:
    """A record value: the JSON array of the documents, zlib-compressed (level 1, ~0.3 us per
    document): outcomes are, after the sink records, the most streamproc writes, and the
    output producer does not compress (it serves every topic)."""
    return zlib.compress(_dumps(docs), 1)


def decode_docs(value: bytes | None) -> list[dict[str, Any]]:
    """The documents of an outcomes record (compressed array, or plain JSON array/object)."""
    if not value:
        return []
    if value[:1] == b"\x78":  # zlib's header; JSON starts with [ or {
        value = zlib.decompress(value)
    doc = orjson.loads(value)
    return [d for d in (doc if isinstance(doc, list) else [doc]) if isinstance(d, dict)]


def _mask_key(email: str) -> str:
    """mask_email for one address (no regex: the ingest hot path)."""
    at = email.find("@")
    return email[:1] + "***" + email[at:] if at > 0 else mask_email(email)


def mask_email(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", text)


class Scrubber:
    """Makes text safe for the outcomes topic: secret fields and auth headers replaced by ***,
    the configured credentials removed wherever they appear, emails masked (when on), and
    the result truncated."""

    def __init__(self, secrets: Iterable[str] = (), *, mask: bool = True, limit: int = 500):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.mask, self.limit = mask, limit

    def __call__(self, text: str | None) -> str:
        if not text:
            return ""
        text = text[: self.limit * 4]  # bound the regex work on huge bodies
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _AUTH_SCHEME.sub(lambda m: m.group(1) + " ***", text)
        text = _SECRET_FIELD.sub(lambda m: m.group(1) + '"***"', text)
        if self.mask:
            text = mask_email(text)
        return text[: self.limit]

    def email(self, email: str | None) -> str | None:
        if not email:
            return None
        return mask_email(email) if self.mask else email


def configured_secrets(settings: Any) -> list[str]:
    s = settings
    values = [s.mailmodo.api_key.get(), s.segment.write_key.get(), s.clevertap.passcode.get(),
              s.mailjet.api_secret.get(), s.mailjet.api_key, s.ingest.webhook_token.get()]
    return [v for v in values + list(s.ingest.segment_write_keys) if v]


class Outcomes:
    """The worker's outcome writer (rt.extras["outcomes"], None when switched off)."""

    def __init__(self, settings: Any, topic: str, partitions: int = 6) -> None:
        cfg = settings.outcomes
        self.topic, self.partitions = topic, partitions
        self.pending: list[dict[str, Any]] = []  # documents of the agent batch being built
        self.scrub = Scrubber(configured_secrets(settings), mask=cfg.mask_emails,
                              limit=cfg.body_chars)
        self.failures: dict[str, deque[dict[str, Any]]] = {}

    def pack(self, docs: list[dict[str, Any]]) -> list[Out]:
        """Outcome documents as Kafka records: those of one partition (crc32 of the message
        id, see partition_hash) together in JSON arrays of at most PACKED documents, so an
        input's outcomes share a partition without a Kafka record each (fewer, larger
        records; bench/routing.py did not show a measurable gain from it on its own)."""
        groups: dict[int, list[dict[str, Any]]] = {}
        n = self.partitions
        for doc in docs:
            g = _crc32(doc["m"].encode()) % n
            group = groups.get(g)
            if group is None:
                groups[g] = [doc]
            else:
                group.append(doc)
        return [(self.topic, None, encode_docs(group[i:i + PACKED]), None, g)
                for g, group in groups.items() for i in range(0, len(group), PACKED)]

    def take(self) -> list[Out]:
        """The records of the documents stashed by the current agent batch (see take_outcomes)."""
        docs, self.pending = self.pending, []
        return self.pack(docs) if docs else []

    # ---------------------------------------------------------------- routing side

    def ingested(self, source: str, m: Any, events: list[Any],
                 errors: list[Any]) -> list[dict[str, Any]]:
        now = int(time.time() * 1000) / 1000
        out = []
        for ev in events:  # the hot path: one per input, kept to plain attribute reads
            doc = {"k": "in", "m": message_id(ev), "t": now, "src": source, "tp": m.topic,
                   "p": m.partition, "o": m.offset}
            user_id = getattr(ev, "user_id", None)
            if user_id:
                doc["u"] = user_id
            email = ev.email_key
            if email:
                doc["e"] = _mask_key(email) if self.scrub.mask else email
                doc["h"] = person_hash(email)
            out.append(doc)
        if errors:
            mid = raw_message_id(m)
            out.append({"k": "in", "m": mid, "t": now, "src": source, "tp": m.topic,
                        "p": m.partition, "o": m.offset})
            for err in errors:
                out.append({"k": "dead", "m": mid, "t": now, "stage": "ingest",
                            "r": err.reason, "msg": self.scrub(err.message)})
        return out

    def routed(self, stage: str, msg: Any, res: Any) -> list[dict[str, Any]]:
        """One `route` outcome per input the result concerns: its sink records (destination,
        delivery id, op), drops with reasons, and whether it was held. Called for every
        users/contacts message: the common case (one input, its own records) stays short."""
        sinks, drops, held = res.sink_records, res.drops, getattr(res, "held", 0)
        if not sinks and not drops and not held:
            return []
        now = int(time.time() * 1000) / 1000
        own = message_id(msg)
        docs: dict[str, dict[str, Any]] = {}
        for r in sinks:
            mid = r.source.get("message_id") or own
            d = docs.get(mid) if mid else None
            if d is None:
                if not mid:
                    continue
                d = docs[mid] = {"k": "route", "m": mid, "t": now, "st": stage, "to": []}
                email = r.payload.get("email") or (r.key if "@" in r.key else None)
                if email and isinstance(email, str):  # the person, for lookups by email
                    d["h"] = person_hash(email)
            d["to"].append((r.destination, r.id, r.op))
        if own and (drops or held or own in docs):
            d = docs.get(own) or docs.setdefault(own, {"k": "route", "m": own, "t": now,
                                                       "st": stage})
            if drops:
                d["drop"] = [(x.destination, x.reason) for x in drops]
            if held:
                d["held"] = held
            user_id = getattr(msg, "user_id", None)
            if user_id and isinstance(user_id, str):
                d["u"] = user_id
        return list(docs.values())

    # ---------------------------------------------------------------- delivery side

    def attempt_outs(self, dest: str, request: Any, status: int | None, body: str,
                     items: list[tuple[Any, int, Any]]) -> list[dict[str, Any]]:
        """`try` outcomes of one HTTP request (Deliverer's on_attempt): one per record it
        carried, with its attempt number and result; failures also go to the status page's
        recent-failures list."""
        now = round(time.time(), 3)
        excerpt = None
        out = []
        for record, attempt, error in items:
            mid = record.source.get("message_id")
            if not mid:
                continue
            result = ("ok" if error is None else "auth" if isinstance(error, AuthError)
                      else "failed" if isinstance(error, Permanent) else "retry")
            doc = {"k": "try", "m": mid, "t": now, "d": dest, "id": record.id, "op": record.op,
                   "req": request.kind, "n": attempt, "s": status, "r": result}
            if error is not None:
                if excerpt is None:
                    excerpt = self.scrub(body)
                doc["b"] = excerpt
                doc["err"] = self.scrub(str(error))[:200]
                ring = self.failures.get(dest)
                if ring is None:
                    ring = self.failures[dest] = deque(maxlen=FAILURES_KEPT)
                ring.appendleft(doc)
            out.append(doc)
        return out

    def dead_outs(self, dest: str, dead: Iterable[Any]) -> list[dict[str, Any]]:
        now = round(time.time(), 3)
        return [{"k": "dead", "m": d.record.source["message_id"], "t": now,
                 "stage": "delivery", "d": dest, "id": d.record.id, "r": d.reason,
                 "s": d.status, "n": d.attempts}
                for d in dead if d.record.source.get("message_id")]

    def recent_failures(self, dest: str) -> list[dict[str, Any]]:
        return list(self.failures.get(dest, ()))


class AttemptRecorder:
    """Deliverer's on_attempt for one destination: collects the `try` outcomes of a batch;
    deliver_batch takes them and produces them with the batch's dead letters."""

    def __init__(self, outcomes: Outcomes, dest: str) -> None:
        self.outcomes, self.dest = outcomes, dest
        self.pending: list[dict[str, Any]] = []

    def __call__(self, request: Any, status: int | None, body: str,
                 items: list[tuple[Any, int, Any]]) -> None:
        self.pending += self.outcomes.attempt_outs(self.dest, request, status, body, items)

    def take(self, dead: Iterable[Any] = ()) -> list[Out]:
        docs, self.pending = self.pending, []
        docs += self.outcomes.dead_outs(self.dest, dead)
        return self.outcomes.pack(docs) if docs else []


def message_id(ev: Any) -> str | None:
    """The id an input is traced by: Segment's messageId, else the event's stable id
    (Mailmodo, Mailjet, CleverTap); the source id of derived envelopes (alias merges)."""
    attr = _ID_ATTR.get(type(ev))
    if attr is None:
        attr = _ID_ATTR[type(ev)] = next(
            (a for a in ("event_id", "message_id", "source_id") if hasattr(ev, a)), "")
    return (getattr(ev, attr) or None) if attr else None


_ID_ATTR: dict[type, str] = {}  # the id attribute per event class (message_id above)


def raw_message_id(m: Any) -> str:
    """An unparseable input: its messageId/id when the JSON has one, else topic:partition:offset."""
    try:
        doc = orjson.loads(m.value or b"")
        if isinstance(doc, dict):
            for key in ("messageId", "message_id", "id", "event_id"):
                if isinstance(doc.get(key), (str, int)) and str(doc[key]):
                    return str(doc[key])
    except orjson.JSONDecodeError:
        pass
    return f"{m.topic}:{m.partition}:{m.offset}"


def install(rt: Runtime) -> Outcomes | None:
    """The worker's Outcomes (rt.extras["outcomes"]), or None when STREAMPROC_OUTCOMES=off."""
    if not rt.settings.outcomes.enabled:
        rt.extras["outcomes"] = None
        return None
    spec = rt.topology.internal["outcomes"]
    rt.extras["outcomes"] = o = Outcomes(rt.settings, spec.name, spec.partitions)
    return o


def of(rt: Runtime) -> Outcomes | None:
    return rt.extras.get("outcomes")


def routing_outs(rt: Runtime, stage: str, msg: Any, res: Any, batched: bool) -> list[Out]:
    """The `route` outcomes of a users/contacts result (none when switched off). In an agent
    batch (`batched`) they are stashed for take_outcomes; else returned as records."""
    o = rt.extras.get("outcomes")
    if o is None:
        return []
    docs = o.routed(stage, msg, res)
    if batched:
        o.pending += docs
        return []
    return o.pack(docs)


def ingest_outs(rt: Runtime, source: str, m: Any, events: list[Any], errors: list[Any],
                batched: bool) -> list[Out]:
    """The `in` (and ingest `dead`) outcomes of one raw record, as routing_outs."""
    o = rt.extras.get("outcomes")
    if o is None:
        return []
    docs = o.ingested(source, m, events, errors)
    if batched:
        o.pending += docs
        return []
    return o.pack(docs)


def take_outcomes(rt: Runtime) -> list[Out]:
    """The outcome records of the agent batch being built, to send with its outputs. Call it
    in the same synchronous stretch as the batch's routing (no await in between): the
    agents share the stash, and asyncio runs none of the others' code meanwhile."""
    o = rt.extras.get("outcomes")
    return [] if o is None else o.take()
