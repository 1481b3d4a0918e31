"""The outcome records' codec, pure: how outcome documents are packed into Kafka record values
and read back, the partition of an input's outcomes and the lookup hash of an email. The worker
writes them (streamproc/worker/outcomes.py); `streamproc trace` and the commands read them."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import orjson

from streamproc.core.routing.messages import decode

# Field names (compact: a few outcomes per input): k kind, m input message id, t unix time,
# d destination, id delivery id, n attempt number, s HTTP status, b response body excerpt,
# r result / reason. Kinds: in, route (with its drops and holds), try, dead (ingest or
# delivery), redrive, replay. The route outcome also carries u userId, e email (masked),
# h email hash. On the topic, the `in` and `route` outcomes of a batch travel as rows, flat
# (field after field in one list "f": no list or tuple per input on the routing path), one
# `ins` / `routes` document per outcomes partition and batch: `ins` documents name the source
# and topic once (src, tp), their rows are message id, partition, offset; a `routes` row is
# the ROUTE_HEAD fields message id, stage, held, u, e, h, uh (the userId's hash when it is an
# email other than the one hashed in h), nd, nt, then nd drops (destination, reason) and nt
# sink records (destination, delivery id, op). Earlier writers nested the rows in "r" (`ins`
# [message id, partition, offset] or [message id, source, topic, partition, offset];
# `routes` [message id, stage, to, drop, held, u, e, h(, uh)]), still read. decode_docs gives
# them all back as documents.
ROUTE_HEAD = 9
PACKED = 500  # outcome documents per Kafka record at most (JSON array)
# and bytes per record value at most: well under the broker's default ~1 MB record limit (a
# record it refuses for good would block send_all, which the batch's real outputs share)
MAX_VALUE = 512 * 1024


def partition_hash(message_id: str) -> int:
    """An input's outcomes go to partition partition_hash(message id) % partitions: crc32,
    since Kafka's murmur2 costs ~5 us per key in Python and crc32 0.1 us (the producer
    takes the partition as the fifth element of an Out, see Outcomes.pack)."""
    return zlib.crc32(message_id.encode())


def person_hash(email: str) -> str:
    """The lookup key of an email (trimmed, lowercased), kept even when emails are masked.
    Cached: a person's events recur (bounded, cleared when full; a key longer than an email
    can be, e.g. a userId, is not kept)."""
    h = _HASHES.get(email)
    if h is None:
        if len(_HASHES) >= 100_000:
            _HASHES.clear()
        h = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:20]
        if len(email) <= 254:
            _HASHES[email] = h
    return h


_HASHES: dict[str, str] = {}
_dumps, _crc32 = orjson.dumps, zlib.crc32


def docs_by_partition(docs: list[dict[str, Any]], n: int) -> dict[int, list[Any]]:
    """Outcome documents by partition: partition_hash of their message id (m) % n."""
    parts: list[list[Any]] = [[] for _ in range(n)]
    for doc in docs:
        parts[_crc32(doc["m"].encode()) % n].append(doc)
    return {g: part for g, part in enumerate(parts) if part}


def routes_by_partition(rows: list[Any], n: int) -> dict[int, list[Any]]:
    """The writer's flat `routes` rows (well formed: it made them) by partition of their
    message id, each partition's still flat."""
    parts: dict[int, list[Any]] = {}
    crc32 = _crc32
    i, end = 0, len(rows)
    while i < end:
        stop = i + ROUTE_HEAD + 2 * rows[i + 7] + 3 * rows[i + 8]
        g = crc32(rows[i].encode()) % n
        part = parts.get(g)
        if part is None:
            parts[g] = rows[i:stop]
        else:
            part += rows[i:stop]
        i = stop
    return parts


def route_spans(flat: Any) -> list[tuple[int, int]]:
    """(start, stop) of each well-formed row of a read `routes` document's flat list, up to
    the first that is not (a reader never raises on a record)."""
    spans: list[tuple[int, int]] = []
    if not isinstance(flat, list):
        return spans
    i, end = 0, len(flat)
    while i + ROUTE_HEAD <= end:
        nd, nt = flat[i + 7], flat[i + 8]
        if type(nd) is not int or type(nt) is not int or nd < 0 or nt < 0:
            break
        stop = i + ROUTE_HEAD + 2 * nd + 3 * nt
        if stop > end or not isinstance(flat[i], str):
            break
        spans.append((i, stop))
        i = stop
    return spans


def encode_docs(docs: list[dict[str, Any]]) -> bytes:
    """A record value: the JSON array of the documents. Not compressed: zlib (level 1) cost
    ~2 us per input on the routing path (bench/route_path.py), a quarter of the outcomes'
    budget; decode_docs still reads the compressed values earlier versions wrote."""
    return _dumps(docs)


def pack_values(docs: list[dict[str, Any]], limit: int = MAX_VALUE,
                most: int = PACKED) -> tuple[list[bytes], int]:
    """Record values for the documents of one partition: JSON arrays of at most `most`
    documents and `limit` bytes, each document encoded once (the `ins` / `routes` row
    documents of the routing path are one document per partition and batch). Returns the
    values and how many documents were dropped: a document that alone exceeds the limit has
    its `ins` / `routes` rows split, else its long strings cut, else it is dropped."""
    if 0 < len(docs) <= most:  # the usual case: one value, encoded in one call
        whole = _dumps(docs)
        if len(whole) <= limit:
            return [whole], 0
    values: list[bytes] = []
    parts: list[bytes] = []
    size, dropped = 1, 0  # "[" + parts joined by "," + "]" is 1 + sum(len + 1)
    for doc in docs:
        raw = _dumps(doc)
        pieces = [raw] if len(raw) + 2 <= limit else _fit(doc, limit)
        if not pieces:
            dropped += 1
        for piece in pieces:
            if parts and (size + len(piece) + 1 > limit or len(parts) >= most):
                values.append(b"[" + b",".join(parts) + b"]")
                parts, size = [], 1
            parts.append(piece)
            size += len(piece) + 1
    if parts:
        values.append(b"[" + b",".join(parts) + b"]")
    return values, dropped


CUT_CHARS = 1000  # what a string field of a too-large document is cut to


def _fit(doc: dict[str, Any], limit: int) -> list[bytes]:
    """A document too large for a record: its rows in halves (row documents), else its long
    string fields but the message id cut to CUT_CHARS; [] when that is still too large."""
    field = "f" if "f" in doc else "r"
    rows, half = doc.get(field), 0
    if doc.get("k") in ("ins", "routes") and isinstance(rows, list):
        if field == "r":
            half = len(rows) // 2
        elif doc["k"] == "ins":
            half = len(rows) // 6 * 3  # a row is 3 fields
        elif len(spans := route_spans(rows)) > 1:
            half = spans[len(spans) // 2][0]
    if half:
        out: list[bytes] = []
        for part in (rows[:half], rows[half:]):  # type: ignore[index]
            raw = _dumps({**doc, field: part})
            out += [raw] if len(raw) + 2 <= limit else _fit({**doc, field: part}, limit)
        return out
    cut = {k: v[:CUT_CHARS] + "...[cut]" if k != "m" and isinstance(v, str)
           and len(v) > CUT_CHARS else v for k, v in doc.items()}
    raw = _dumps(cut)
    return [raw] if len(raw) + 2 <= limit else []


def decode_docs(value: bytes | None) -> list[dict[str, Any]]:
    """The documents of an outcomes record (compressed array, or plain JSON array/object),
    `ins` row documents expanded into one `in` document per input."""
    if not value:
        return []
    if value[:1] == b"\x78":  # zlib's header; JSON starts with [ or {
        value = zlib.decompress(value)
    doc = orjson.loads(value)
    out: list[dict[str, Any]] = []
    for d in doc if isinstance(doc, list) else [doc]:
        if not isinstance(d, dict):
            continue
        kind = d.get("k")
        if kind == "ins":
            t, src, tp = d.get("t", 0), d.get("src"), d.get("tp")
            flat = d.get("f")
            if isinstance(flat, list):
                out += [{"k": "in", "m": flat[i], "t": t, "src": src, "tp": tp,
                         "p": flat[i + 1], "o": flat[i + 2]} for i in range(0, len(flat) - 2, 3)
                        if isinstance(flat[i], str)]
            for r in _list(d.get("r")):
                if isinstance(r, list) and len(r) == 3:  # source and topic in the document
                    out.append({"k": "in", "m": r[0], "t": t, "src": src, "tp": tp, "p": r[1],
                                "o": r[2]})
                elif isinstance(r, list) and len(r) == 5:  # the earlier form
                    out.append({"k": "in", "m": r[0], "t": t, "src": r[1], "tp": r[2],
                                "p": r[3], "o": r[4]})
        elif kind == "routes":
            t, flat = d.get("t", 0), d.get("f")
            out += [_flat_route_doc(flat, i, stop, t) for i, stop in route_spans(flat)]
            out += [_route_doc(r, t)
                    for r in _list(d.get("r")) if isinstance(r, list) and 8 <= len(r) <= 9]
        else:
            out.append(d)
    return out


def _list(value: Any) -> list[Any]:
    """A document's field that should be a list, else []: a reader never raises on one."""
    return value if isinstance(value, list) else []


_ROUTE_FIELDS = ("drop", "held", "u", "e", "h", "uh")  # the optional fields of a `routes` row


def _flat_route_doc(flat: list[Any], i: int, stop: int, t: float) -> dict[str, Any]:
    """The `route` document of the flat row flat[i:stop] (ROUTE_HEAD), as _route_doc."""
    drops = i + ROUTE_HEAD + 2 * flat[i + 7]
    doc = {"k": "route", "m": flat[i], "t": t, "st": flat[i + 1],
           "to": [flat[k:k + 3] for k in range(drops, stop, 3)]}
    if drops > i + ROUTE_HEAD:
        doc["drop"] = [flat[k:k + 2] for k in range(i + ROUTE_HEAD, drops, 2)]
    doc.update((k, v) for k, v in zip(_ROUTE_FIELDS[1:], flat[i + 2:i + 7]) if v)
    return doc


def _route_doc(row: list[Any], t: float) -> dict[str, Any]:
    doc = {"k": "route", "m": row[0], "t": t, "st": row[1], "to": row[2] or []}
    doc.update((k, v) for k, v in zip(_ROUTE_FIELDS, row[3:]) if v)
    return doc


# An envelope's id: the first of these it has (a Mailjet event has both its own event_id and
# the MessageID its email's events share; a derived envelope has its input's source_id).
ID_FIELDS = ("event_id", "message_id", "source_id")


def message_id(ev: Any) -> str | None:
    """The id an input is traced by: Segment's messageId, else the event's stable id
    (Mailmodo, Mailjet, CleverTap); the source id of derived envelopes (alias merges)."""
    attr = id_attr(ev)
    return (getattr(ev, attr) or None) if attr else None


def id_attr(ev: Any) -> str:
    """The attribute message_id reads for an object of this class ("": none), cached."""
    attr = ID_ATTR.get(type(ev))
    if attr is None:
        attr = ID_ATTR[type(ev)] = next((a for a in ID_FIELDS if hasattr(ev, a)), "")
    return attr


ID_ATTR: dict[type, str] = {}  # the id attribute per event class (message_id above)


def decoded(value: Any) -> Any:
    """The envelope of a repartition-topic record's value, or None: never raises (None, bad
    JSON, nesting too deep, ...)."""
    try:
        return decode(value)
    except Exception:  # noqa: BLE001 - not an envelope
        return None


def envelope_id(m: Any, env: Any) -> str:
    """The id a record of a repartition topic is traced by: message_id of its envelope `env`
    (decoded(m.value)); for one that does not decode, the first of those id fields its JSON
    has; else its topic:partition:offset. Never raises."""
    return envelope_ref(m, env)[0]


def envelope_ref(m: Any, env: Any) -> tuple[str, str]:
    """(envelope_id, the field it is: one of ID_FIELDS, "" for topic:partition:offset). Its
    field is source_id for a follow-up of an input (a contact update of an identify, an alias
    merge): traced under the id of the input it came from."""
    mid = message_id(env) if env is not None else None
    if mid:
        return mid, id_attr(env)
    try:
        doc = orjson.loads(m.value)
        for attr in ID_FIELDS:
            v = doc.get(attr) if isinstance(doc, dict) else None
            if isinstance(v, str) and v:
                return v, attr
    except Exception:  # noqa: BLE001
        pass
    return f"{m.topic}:{m.partition}:{m.offset}", ""


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

