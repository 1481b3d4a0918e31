"""Outcome records: what happened to each input (ingested, routed, dropped, held, each delivery
attempt, dead-lettered), small JSON objects on the outcomes topic that `streamproc trace` and
the status page read. Emails masked (setting), secrets scrubbed, response bodies truncated."""

from __future__ import annotations

import logging
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable

from streamproc.core.errors import AuthError, Permanent
from streamproc.core.outcome_codec import (
    ID_ATTR, decoded, docs_by_partition, envelope_ref, id_attr, message_id, pack_values,
    person_hash, raw_message_id, routes_by_partition,
)
from streamproc.worker.scrub import ERROR_CHARS, mask_key, outcome_scrubber

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime
    from streamproc.worker.output import Out

log = logging.getLogger(__name__)

# Field names and the record forms: streamproc/core/outcome_codec.py.
FAILURES_KEPT = 20  # per destination, for the status page
PEOPLE_CACHED = 50_000  # emails whose masked form and hash are kept (a person's events recur)
PERSON_CHARS = 254  # the longest email (is_email): longer keys are not kept
_crc32 = zlib.crc32


class Outcomes:
    """The worker's outcome writer (rt.outcomes, None when switched off)."""

    def __init__(self, settings: Any, topic: str, partitions: int = 6) -> None:
        self.topic, self.partitions = topic, partitions
        self.pending: list[dict[str, Any]] = []  # documents of the agent batch being built
        # its `in` rows: (source, topic) -> per outcomes partition, flat rows (message id,
        # partition, offset), put where they go as they are made (ingest_outs)
        self.ins: dict[tuple[str, str], list[list[Any]]] = {}
        self.routes: list[Any] = []  # its `route` rows, flat (routing_outs)
        self.scrub = outcome_scrubber(settings)
        self.failures: dict[str, deque[dict[str, Any]]] = {}
        self.oversized = 0  # documents dropped as too large for a record (pack_values)
        self._people: dict[str, tuple[str, str]] = {}  # email -> (as shown, person_hash)

    def pack(self, docs: list[dict[str, Any]], rows: Iterable[tuple[Any, ...]] = (),
             routes: list[Any] = ()) -> list[Out]:
        """Outcome documents, `in` rows (message id, source, topic, partition, offset) and
        flat `route` rows (routed) as Kafka records."""
        ins: dict[tuple[str, str], list[list[Any]]] = {}
        for mid, source, tp, p, off in rows:
            self._parts(ins, source, tp)[_crc32(mid.encode()) % self.partitions] += (mid, p, off)
        return self._records(docs, ins, routes)

    def _parts(self, ins: dict[tuple[str, str], list[list[Any]]], source: str, tp: str
               ) -> list[list[Any]]:
        """The per-partition `in` row lists of (source, topic) in `ins`, made when missing."""
        parts = ins.get((source, tp))
        if parts is None:
            parts = ins[(source, tp)] = [[] for _ in range(self.partitions)]
        return parts

    def take(self) -> list[Out]:
        """The records of the outcomes the current agent batch stashed (take_outcomes): flat
        rows of strings and numbers, never its parsed events (freed here, cold: README)."""
        docs, rows, routes = self.pending, self.ins, self.routes
        if not docs and not rows and not routes:
            return []
        self.pending, self.ins, self.routes = [], {}, []
        return self._records(docs, rows, routes)

    def rollback(self) -> None:
        """Drop the stash (what a batch that failed before take left; it is read again). A
        crashed input's rows are dropped by the state agent: `routes` after its start (a state
        stage stashes route rows only, routing_dead docs after the crash)."""
        del self.pending[:], self.routes[:]
        self.ins.clear()

    def _records(self, docs: list[dict[str, Any]], ins: dict[tuple[str, str], list[list[Any]]],
                 routes: list[Any]) -> list[Out]:
        """Documents and rows as records: those of one partition (crc32 of the message id, see
        partition_hash) together in JSON arrays of at most PACKED documents, so an input's
        outcomes share a partition without a Kafka record each (fewer, larger records), and
        of at most MAX_VALUE bytes (pack_values: a record the broker refuses for good would
        block the batch's outputs). `in` rows travel as an `ins` document per partition,
        source and topic (src, tp), flat rows message id, partition, offset; `route` rows as
        a `routes` document per partition (outcome_codec.ROUTE_HEAD)."""
        n = self.partitions
        groups = docs_by_partition(docs, n) if docs else {}
        now = int(time.time() * 1000) / 1000
        for (source, tp), parts in ins.items():
            for g, part in enumerate(parts):
                if part:
                    groups.setdefault(g, []).append(
                        {"k": "ins", "t": now, "src": source, "tp": tp, "f": part})
        if routes:
            for g, part in routes_by_partition(routes, n).items():
                groups.setdefault(g, []).append({"k": "routes", "t": now, "f": part})
        out: list[Out] = []
        topic = self.topic
        for g, group in groups.items():
            values, dropped = pack_values(group)
            if dropped:
                self.oversized += dropped
                log.warning("%d outcome document(s) too large for a record even cut down "
                            "were dropped (%d so far)", dropped, self.oversized)
            out += [(topic, None, v, None, g) for v in values]
        return out

    # ---------------------------------------------------------------- routing side

    def ingest_dead(self, source: str, m: Any, errors: list[Any]) -> list[dict[str, Any]]:
        """An input that could not be (fully) parsed: its `in` and ingest `dead` outcomes,
        under its own id (raw_message_id)."""
        now = int(time.time() * 1000) / 1000
        mid = raw_message_id(m)
        out = [{"k": "in", "m": mid, "t": now, "src": source, "tp": m.topic,
                "p": m.partition, "o": m.offset}]
        out += [{"k": "dead", "m": mid, "t": now, "stage": "ingest", "r": err.reason,
                 "msg": self.scrub(err.message, ERROR_CHARS)} for err in errors]
        return out

    def routing_dead(self, stage: str, m: Any, reason: str, message: str
                     ) -> list[dict[str, Any]]:
        """The `dead` outcome of a record a routing stage dead-lettered (an envelope that does
        not decode, a routing error): under its input's id (envelope_id), with the topic it
        was read from (tp: what `dlq redrive` sends it back to) and, for a follow-up of an
        input (derived), dv 1: the trace shows that as the stage's dead letter beside where
        the input went, not as the input's. Never raises: it runs where the record is
        dead-lettered, and must not fail the batch instead."""
        env = decoded(m.value)
        mid, field = envelope_ref(m, env)
        doc = {"k": "dead", "m": mid, "t": int(time.time() * 1000) / 1000, "stage": "routing",
               "st": stage, "r": reason, "msg": "", "tp": m.topic}
        if field == "source_id":
            doc["dv"] = 1
        try:
            doc["msg"] = self.scrub(message, ERROR_CHARS)
            if env is not None:
                doc.update(self._who(env))
        except Exception:  # noqa: BLE001 - the dead letter matters, not its outcome's details
            log.exception("the dead outcome of %s:%s:%s is incomplete", m.topic, m.partition,
                          m.offset)
        return [doc]

    def _who(self, env: Any) -> dict[str, Any]:
        """The person fields of an envelope (u, e, h, uh, as its route row has them), so that
        `streamproc trace <email | userId>` finds it dead-lettered."""
        who: dict[str, Any] = {}
        email, user_id = getattr(env, "email_key", None), getattr(env, "user_id", None)
        if isinstance(email, str) and email:
            who["e"], who["h"] = self._people.get(email) or self._person(email)
        if isinstance(user_id, str) and user_id:
            if "@" in user_id:  # an email as userId: masked (unless off) and hashed
                who["u"], uh = self._people.get(user_id) or self._person(user_id)
                who["uh" if who.get("h", uh) != uh else "h"] = uh
            else:
                who["u"] = user_id
        return who

    def routed(self, stage: str, msg: Any, res: Any) -> list[Any]:
        """The `route` rows of the inputs the result concerns, flat (see the field notes): per
        input its sink records (destination, delivery id, op), drops with reasons, and
        whether it was held. An input (not a derived envelope) always gets one, with its
        person (u userId, e masked email, h email hash): it is also what says the input
        reached routing. A userId that is an email is masked as emails are, and found by its
        hash (h, else uh), masked or not (`trace Jane@Example.com` finds jane@example.com)."""
        rows: list[Any] = []
        self.route_rows(stage, msg, res, rows)
        return rows

    def route_rows(self, stage: str, msg: Any, res: Any, rows: list[Any]) -> None:
        """routed(), appending the rows to `rows` (the batch's stash) field by field, flat (the
        `routes` layout: outcome_codec.ROUTE_HEAD): no list or tuple per input that the
        collector would walk until the batch's end (README, Outcomes). Run for every routed
        input: plain local code, its person looked up once."""
        sinks, drops = res.sink_records, res.drops
        holds = getattr(res, "holds", True)
        held = (getattr(res, "held", 0) or None) if holds else None  # a count
        attr = ID_ATTR.get(type(msg))
        if attr is None:
            attr = id_attr(msg)
        own = (getattr(msg, attr) or None) if attr else None
        if not own:
            if not sinks:
                return
        elif not sinks and not drops and not held and attr == "source_id":
            return  # a derived envelope that changed nothing visible
        others: dict[str, list[Any]] | None = None  # other inputs' sinks (released holds)
        if own:
            people, person = self._people, self._person
            uh = h = e = None  # the masked email; the hashes of the email and the userId
            user_id = getattr(msg, "user_id", None)
            email = getattr(msg, "email_key", None)
            if email and isinstance(email, str):
                e, h = people.get(email) or person(email)
            if not isinstance(user_id, str):
                user_id = None
            elif "@" in user_id:  # an email as userId: masked (unless off), hashed
                user_id, uh = people.get(user_id) or person(user_id)
            at = len(rows)
            rows += (own, stage, held, user_id, e, h, None, len(drops), 0)
            for x in drops:
                rows += (x.destination, x.reason)
            n = 0
            for r in sinks:
                mid = r.source.get("message_id") or own
                if mid == own:
                    rows += (r.destination, r.id, r.op)
                    n += 1
                    if h is None:  # the person, for lookups by email
                        h = self._sink_person(r)
                else:
                    others = self._other(others, mid, r)
            if uh is not None and h is not None and h != uh:  # found by both hashes
                rows[at + 5:at + 7] = (h, uh)
            else:
                rows[at + 5] = h or uh
            rows[at + 8] = n
        else:  # no own id: rows per sink's input only
            for r in sinks:
                mid = r.source.get("message_id")
                if mid:
                    others = self._other(others, mid, r)
        if others:
            for mid, (h, *to) in others.items():
                rows += (mid, stage, None, None, None, h, None, 0, len(to) // 3)
                rows += to

    def _other(self, others: dict[str, list[Any]] | None, mid: str, r: Any
               ) -> dict[str, list[Any]]:
        """`others` (made when None) with sink record r of input `mid` (another input's, whose
        held records this one released): [person hash, then destination, id, op per record]."""
        others = {} if others is None else others
        this = others.setdefault(mid, [None])  # the rare path: released holds only
        this += (r.destination, r.id, r.op)
        if this[0] is None:
            this[0] = self._sink_person(r)
        return others

    def _sink_person(self, r: Any) -> str | None:
        """The person hash of a sink record's email (payload, else an email key), or None."""
        email = r.payload.get("email") or (r.key if "@" in r.key else None)
        if email and isinstance(email, str):
            return (self._people.get(email) or self._person(email))[1]
        return None

    def _person(self, email: str) -> tuple[str, str]:
        """(the email as the outcomes show it, its person_hash), cached (bounded in entries,
        and in bytes: a key longer than an email can be, e.g. a userId, is not kept)."""
        people = self._people
        if len(people) >= PEOPLE_CACHED:
            people.clear()
        pair = (mask_key(email) if self.scrub.mask else email, person_hash(email))
        if len(email) <= PERSON_CHARS:
            people[email] = pair
        return pair

    # ---------------------------------------------------------------- delivery side

    def attempt_outs(self, dest: str, request: Any, status: int | None, body: str,
                     items: list[tuple[Any, int, Any]]) -> list[dict[str, Any]]:
        """`try` outcomes of one HTTP request (Deliverer's on_attempt): one per record it
        carried, with its attempt number and result; failures also go to the status page's
        recent-failures list."""
        now = round(time.time(), 3)
        excerpt = None
        shared = len(items) > 1 and (status is not None and 200 <= status < 300 or len(
            {str(e) for _, _, e in items if e is not None}) > 1)
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
                if excerpt is None:  # a request of several records answered 2xx, or with
                    excerpt = "" if shared else self.scrub(body)  # an error per record:
                if excerpt:  # its body lists the others' data and errors; err says its own
                    doc["b"] = excerpt
                doc["err"] = self.scrub(str(error), 200)
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

    def seen_outs(self, dest: str, records: Iterable[Any]) -> list[dict[str, Any]]:
        now = round(time.time(), 3)
        return [{"k": "seen", "m": r.source["message_id"], "t": now, "d": dest, "id": r.id}
                for r in records if r.source.get("message_id")]

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

    def take(self, dead: Iterable[Any] = (), already: Iterable[Any] = ()) -> list[Out]:
        """The batch's `try` outcomes, its `dead` ones, and a `seen` one per record the
        ledger had delivered before (not sent again: a replay or a batch read again), so its
        trace says delivered, not routed."""
        docs, self.pending = self.pending, []
        docs += self.outcomes.dead_outs(self.dest, dead)
        docs += self.outcomes.seen_outs(self.dest, already)
        return self.outcomes.pack(docs) if docs else []


def install(rt: Runtime) -> Outcomes | None:
    """The worker's Outcomes (rt.outcomes), or None when STREAMPROC_OUTCOMES=off."""
    if not rt.settings.outcomes.enabled:
        rt.outcomes = None
        return None
    spec = rt.topology.internal["outcomes"]
    rt.outcomes = o = Outcomes(rt.settings, spec.name, spec.partitions)
    return o


def routing_outs(rt: Runtime, stage: str, msg: Any, res: Any, batched: bool) -> list[Out]:
    """The `route` outcomes of a users/contacts result (none when switched off). In an agent
    batch (`batched`) they are stashed for take_outcomes; else returned as records."""
    o = rt.outcomes
    if o is None:
        return []
    if batched:
        o.route_rows(stage, msg, res, o.routes)
        return []
    return o.pack([], (), o.routed(stage, msg, res))


def routing_dead_outs(rt: Runtime, stage: str, m: Any, reason: str, message: str,
                      batched: bool) -> list[Out]:
    """The `dead` outcome of a record a routing stage dead-lettered, as routing_outs."""
    o = rt.outcomes
    if o is None:
        return []
    docs = o.routing_dead(stage, m, reason, message)
    if batched:
        o.pending += docs
        return []
    return o.pack(docs)


def ingest_outs(rt: Runtime, source: str, m: Any, events: list[Any], errors: list[Any],
                batched: bool) -> list[Out]:
    """The `in` outcomes (rows, see the field notes) and ingest `dead` ones of one raw
    record, as routing_outs."""
    o = rt.outcomes
    if o is None:
        return []
    docs = o.ingest_dead(source, m, errors) if errors else None
    if not batched:
        return o.pack(docs or [], [(mid, source, m.topic, m.partition, m.offset)
                                   for mid in map(message_id, events) if mid])
    # stashed for take(), with the batch's other outcomes, in the partition lists they go to
    p, off, n = m.partition, m.offset, o.partitions
    parts = o._parts(o.ins, source, m.topic)
    for ev in events:
        attr = ID_ATTR.get(type(ev))
        mid = getattr(ev, attr) if attr else message_id(ev)
        if mid:
            parts[_crc32(mid.encode()) % n] += (mid, p, off)
    if docs:
        o.pending += docs
    return []


def take_outcomes(rt: Runtime) -> list[Out]:
    """The outcome records of the agent batch being built, to send with its outputs. Call it
    in the same synchronous stretch as the batch's routing (no await in between): the
    agents share the stash, and asyncio runs none of the others' code meanwhile."""
    o = rt.outcomes
    return [] if o is None else o.take()
