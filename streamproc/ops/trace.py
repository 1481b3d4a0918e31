"""`streamproc trace <message id | email | userId>`: the timeline of one input, or of a person's
latest inputs, from the outcomes topic through a local RocksDB index (message id -> outcomes,
email hash / userId -> recent message ids) that each lookup brings up to date incrementally."""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import Any

import orjson

from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.outcome_codec import decode_docs, person_hash
from streamproc.ops.trace_text import own_error, rows_of as _rows

# the person fields of an outcome and their index prefix: userId, email hash, the hash of a
# userId that is an email (masked in u) other than the one in h
_PERSON_FIELDS = (("u", "u"), ("h", "h"), ("uh", "h"))
PERSON_KEPT = 50  # message ids remembered per person (the newest)
# The index's format: an index of another one is rebuilt from the topic when opened. 2: the
# flat `in` / `route` rows (outcome_codec), which a reader before it skipped for good.
INDEX_FORMAT = 2
DEFAULT_LIMIT = 10


class TraceIndex:
    """The index of one outcomes topic in a local RocksDB (rocksdict). Keys: `o:<partition>`
    next offset to read; `m:<message id>` its outcomes (JSON list); `u:<userId>` and
    `h:<email hash>` [[time, message id], ...] newest last (an email-like userId, masked in
    the outcomes, is under h: by its hash). Lookups read only what was produced since the
    previous one; the first one reads the topic once (its retention)."""

    def __init__(self, path: str | Path) -> None:
        from rocksdict import Rdict

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path))
        if self._get("fmt") != INDEX_FORMAT:  # built by a reader that skipped records this
            self.db.close()  # one reads (and moved past them): read the topic again. Only
            Rdict.destroy(str(path))  # the database's own files go (RocksDB's DestroyDB)
            path.mkdir(parents=True, exist_ok=True)
            self.db = Rdict(str(path))
            self.db[b"fmt"] = orjson.dumps(INDEX_FORMAT)

    def close(self) -> None:
        self.db.close()

    def _get(self, key: str) -> Any:
        raw = self.db.get(key.encode())
        return None if raw is None else orjson.loads(raw)

    def next_offset(self, partition: int) -> int:
        return self._get(f"o:{partition}") or 0

    def add(self, records: list[Any]) -> None:
        """Index consumed outcome records (aiokafka ConsumerRecords) in one write batch."""
        from rocksdict import WriteBatch

        outcomes: dict[str, list[Any]] = {}
        people: dict[str, list[Any]] = {}
        offsets: dict[int, int] = {}
        for doc in _documents(records, offsets):
            mid = doc["m"]
            key = f"m:{mid}"
            if key not in outcomes:
                outcomes[key] = self._get(key) or []
            outcomes[key].append(doc)
            for field, prefix in _PERSON_FIELDS:
                value = doc.get(field)
                if value and not (field == "u" and "***@" in str(value)):  # masked: no key
                    pkey = f"{prefix}:{value}"
                    if pkey not in people:
                        people[pkey] = self._get(pkey) or []
                    people[pkey].append([doc.get("t", 0), mid])
        batch = WriteBatch()
        for key, docs in outcomes.items():
            batch.put(key.encode(), orjson.dumps(docs))
        for key, seen in people.items():
            latest: dict[str, float] = {}
            for t, mid in seen:
                latest[mid] = max(t, latest.get(mid, 0))
            newest = sorted(latest.items(), key=lambda kv: kv[1])[-PERSON_KEPT:]
            batch.put(key.encode(), orjson.dumps([[t, mid] for mid, t in newest]))
        for partition, offset in offsets.items():
            batch.put(f"o:{partition}".encode(), orjson.dumps(offset))
        self.db.write(batch)

    def outcomes(self, message_id: str) -> list[dict[str, Any]]:
        return self._get(f"m:{message_id}") or []

    def person(self, query: str) -> list[str]:
        """Message ids of a person's inputs, newest first (by email or userId)."""
        q = query.strip()
        seen = (self._get(f"h:{person_hash(q)}") or []) if "@" in q else []
        seen += self._get(f"u:{q}") or []
        latest: dict[str, float] = {}  # an input under both keys (userId = email) once
        for t, mid in seen:
            latest[mid] = max(t, latest.get(mid, t))
        return sorted(latest, key=latest.__getitem__, reverse=True)


def _documents(records: list[Any], offsets: dict[int, int]) -> list[dict[str, Any]]:
    """The outcome documents of consumed records (outcomes.decode_docs),
    noting each partition's next offset in `offsets`."""
    docs = []
    for rec in records:
        offsets[rec.partition] = rec.offset + 1
        try:
            found = decode_docs(rec.value)
        except (orjson.JSONDecodeError, zlib.error, TypeError):
            continue
        for doc in found:
            if not isinstance(doc.get("m"), str) or not isinstance(doc.get("k"), str):
                continue
            t = doc.get("t")
            if not isinstance(t, (int, float)) or isinstance(t, bool):
                doc["t"] = 0  # a writer's bad time: the document is kept, ordered first
            docs.append(doc)
    return docs


async def catch_up(settings: Settings, topic: str, index: TraceIndex,
                   progress: Any = None) -> int:
    """Read the outcomes produced since the index's offsets into it; returns how many."""
    from aiokafka import TopicPartition

    from streamproc.ops.topic_reader import PartitionRange, new_consumer, partition_counts, scan

    parts = (await partition_counts(settings, [topic])).get(topic)
    if not parts:
        raise LookupError(f"the outcomes topic {topic} does not exist (streamproc topics apply)")
    consumer = new_consumer(settings, "trace")
    await consumer.start()
    n = 0
    try:
        tps = [TopicPartition(topic, p) for p in range(parts)]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        ranges = [PartitionRange(topic, tp.partition,
                                 start_offset(index.next_offset(tp.partition), begin[tp],
                                              end[tp]), end[tp]) for tp in tps]
        chunk: list[Any] = []
        async for rec in scan(consumer, ranges, progress):
            chunk.append(rec)
            if len(chunk) >= 5000:
                index.add(chunk)
                n += len(chunk)
                chunk = []
        index.add(chunk)
        n += len(chunk)
    finally:
        await consumer.stop()
    return n


def start_offset(next_offset: int, begin: int, end: int) -> int:
    """Where to read a partition from: the index's next offset, or the partition's first
    when that is gone (retention), or beyond its end (the topic was deleted and created
    again: its offsets started over, and waiting to reach the old ones would skip them)."""
    return begin if next_offset > end else max(next_offset, begin)


def lookup(index: TraceIndex, query: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """Timelines (see timeline()) for a message id, or a person's latest `limit` inputs."""
    query = query.strip()  # pasted with a space
    own = index.outcomes(query)
    mids = [query] if own else index.person(query)[:limit]
    return [timeline(mid, index.outcomes(mid)) for mid in mids]


def timeline(message_id: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One input: its outcomes in time order and, per destination, where it ended, the latest
    decision winning:
    - a drop, then a replay routed this time: routed; held, then released by another input:
      no longer held; a dead letter redriven, or a sink record replayed with --force: its
      attempts start again; an input replayed or redriven: the records its new route rows
      name start again; a sink record the ledger found delivered (`seen`): delivered;
    - a destination one stage sent to is not undone by another stage's drop for it, only
      after the input was sent again;
    - attempts count the `try` outcomes of a record (its HTTP attempts over every delivery
      call), and a destination with several sink records (a Mailmodo form's two CleverTap
      events) is only delivered when all of them are (_dest_state).
    Documents of an odd shape (older or foreign writers) are skipped, never fatal."""
    events = sorted(docs, key=lambda d: (d.get("t", 0), _ORDER.get(d.get("k"), 9)))
    sent: dict[str, dict[Any, dict[str, Any]]] = {}  # destination -> delivery id -> state
    dests: dict[str, dict[str, Any]] = {}  # drops, and the input's (or a stage's) own state
    first = next((d for d in events if d.get("k") == "in"), {})
    person = next((d for d in events if d.get("u") or d.get("e")), first)  # the route outcome
    dead_at: dict[str, str] = {}  # the topic a routing dead letter was read from -> its key
    again = False  # the input was sent again (a replay or redrive): its routing starts over
    restarted: set[tuple[str, str]] = set()  # records routed since it was sent again

    def record(dest: Any, rid: Any) -> dict[str, Any]:
        dest = str(dest)
        if rid is not None and not isinstance(rid, (str, int)):
            rid = str(rid)
        recs = sent.setdefault(dest, {})
        dests.pop(dest, None)  # sent after all: not (or no longer) dropped
        if rid is None and recs:  # an outcome without the delivery id (older writers)
            return next((r for r in recs.values() if r.get("state") != "delivered"),
                        next(iter(recs.values())))
        if rid not in recs and None in recs:  # its delivery id, learnt
            recs[rid] = recs.pop(None)
        return recs.setdefault(rid, {"state": "routed"})

    for d in events:
        kind = d.get("k")
        if kind == "route":
            for dest, reason in _rows(d.get("drop"), 2):
                if dest in sent and not again:  # sent by another stage's row of the input
                    continue
                sent.pop(dest, None)
                dests[str(dest)] = {"state": "dropped", "reason": reason}
            for dest, rid, _op in _rows(d.get("to"), 3):
                st = record(dest, rid)
                if again and (dest, str(rid)) not in restarted:  # routed anew: starts again
                    restarted.add((dest, str(rid)))
                    st.clear()
                    st["state"] = "routed"
            if d.get("held"):
                dests["*"] = {"state": "held"}
            elif d.get("to") and dests.get("*", {}).get("state") == "held":
                del dests["*"]  # released (its sink records are in this row)
        elif kind in ("try", "seen") and d.get("d"):
            st = record(d["d"], d.get("id"))
            if kind == "seen":  # the ledger had it delivered: not sent again
                st["state"] = "delivered"
                continue
            st["attempts"] = st.get("attempts", 0) + 1
            if d.get("r") == "ok":
                st.update(state="delivered", status=d.get("s"))
                st.pop("reason", None)
                st.pop("error", None)
            elif st["state"] != "delivered":
                st.update(state="retrying" if d.get("r") == "retry" else "failing",
                          status=d.get("s"), body=d.get("b"))
                st.pop("error", None)
                if own := own_error(d):
                    st["error"] = own
        elif kind == "dead" and d.get("d"):
            st = record(d["d"], d.get("id"))
            st.update(state="dead_lettered", reason=d.get("r"), status=d.get("s"))
        elif kind == "dead":  # the input itself, or a follow-up of it (dv: a derived
            dead = f"{d['st']} stage" if d.get("dv") and d.get("st") else "*"  # envelope)
            dests[dead] = {"state": "dead_lettered", "reason": d.get("r"),
                           "stage": d.get("stage", "ingest")}
            if isinstance(d.get("tp"), str):
                dead_at[d["tp"]] = dead
        elif kind in ("redrive", "replay") and d.get("d"):  # a sink record sent again
            st = record(d["d"], d.get("id"))
            if kind == "replay" and not d.get("f") and st.get("state") == "delivered":
                continue  # not forced: the ledger skips it (a `seen` says so)
            st.clear()
            st["state"] = _AGAIN[kind]
        elif kind in ("redrive", "replay"):  # sent again to the topic it was read from
            to = d.get("to")
            dests[dead_at.get(to, "*") if isinstance(to, str) else "*"] = {"state": _AGAIN[kind]}
            again = True
            restarted.clear()
    for dest, recs in sent.items():
        dests[dest] = _dest_state(list(recs.values()))
    return {"message_id": message_id, "source": first.get("src"),
            "user_id": first.get("u") or person.get("u"),
            "email": first.get("e") or person.get("e"), "destinations": dests, "events": events}


# what a destination with several sink records shows: the state of the record furthest from
# delivered (the order below), with how many of them were delivered
_PENDING = ("dead_lettered", "failing", "retrying", "redriven", "replayed", "routed")


def _dest_state(recs: list[dict[str, Any]]) -> dict[str, Any]:
    if len(recs) == 1:
        return recs[0]
    done = sum(1 for r in recs if r.get("state") == "delivered")
    worst = min(recs, key=lambda r: _PENDING.index(r["state"]) if r.get("state") in _PENDING
                else len(_PENDING))
    return {**worst, "records": len(recs), "delivered": done}


_AGAIN = {"redrive": "redriven", "replay": "replayed"}
# at equal times: a redrive or replay first (what follows it is its effect), a `try` before
# its record's dead letter
_ORDER = {"redrive": -1, "replay": -1, "in": 0, "route": 1, "held": 2, "try": 3, "seen": 3,
          "dead": 4}


def index_path(settings: Settings, topic: str, purpose: str = "cli") -> Path:
    return Path(settings.data_dir) / f"trace-index-{purpose}" / topic


async def run_trace_command(settings: Settings, topology: Topology,
                            args: argparse.Namespace) -> int:
    from streamproc.ops.trace_text import render_text
    from streamproc.ops.topic_reader import Progress

    topic = topology.internal["outcomes"].name
    index = TraceIndex(args.index_dir or index_path(settings, topic))
    try:
        try:
            await catch_up(settings, topic, index,
                           Progress("trace: indexing outcomes", 0, quiet_when_fast=True))
        except LookupError as e:
            print(f"streamproc trace: {e}", file=sys.stderr)
            return 1
        found = lookup(index, args.query, args.limit)
    finally:
        index.close()
    if args.json:
        sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(args.query, found))
    return 0 if found else 1


def add_parser(sub: Any, func: Any) -> None:
    t = sub.add_parser("trace", help="what happened to one input (message id) or to a "
                                     "person's latest inputs (email or userId)")
    t.add_argument("query", help="a message id, an email or a userId")
    t.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"a person's latest inputs to show (default {DEFAULT_LIMIT})")
    t.add_argument("--json", action="store_true", help="print the timelines as JSON")
    t.add_argument("--index-dir", help="where the local index lives (default: DATA_DIR/trace-index-cli/<topic>)")
    t.set_defaults(func=func)
