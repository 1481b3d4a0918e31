"""The faust agents, kept thin: ingest (parse, re-key, dead-letter), users and contacts (state
+ routing into sink topics) and one delivery agent per enabled destination. A batch is done
(its partitions' checkpoint moves, streamproc/runtime) only once its outputs and changelog
records are acknowledged by the broker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from streamproc import runtime
from streamproc.core.errors import EventError
from streamproc.core.events.inputs import parse_input
from streamproc.core.records import MAX_RECORD_BYTES, dead_letter
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.contacts import route_contact_event
from streamproc.core.routing.messages import SweepPending, decode, encode, key_for
from streamproc.core.routing.users import route_user_event, sweep_pending
from streamproc.core.state.model import Contact, KnownUser
from streamproc.runtime import TableWriter
from streamproc.worker.batch_context import BatchContext
from streamproc.worker.batching import STATE_STORE_OPTIONS, batches_of, table_kwargs
from streamproc.worker.holds_sweep import RESWEEP_S, count_holds, index, register_sweeper
from streamproc.worker.outcomes import (ingest_outs, routing_dead_outs, routing_outs,
                                        take_outcomes)
from streamproc.worker.output import Out

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

log = logging.getLogger(__name__)

INGEST_BATCH = 2000
STATE_BATCH = 2000
WITHIN = 0.05  # seconds a partial batch waits


def _source(m: Any) -> dict[str, Any]:
    return {"topic": m.topic, "partition": m.partition, "offset": m.offset}


# ------------------------------------------------------------------------------ ingest


def ingest_outputs(rt: Runtime, source: str, m: Any, batch: BatchContext | None = None,
                   ) -> list[Out]:
    topo, metrics = rt.topology, rt.metrics
    ctx = batch or BatchContext(rt, direct=False)
    events, errors = parse_input(source, m)
    out: list[Out] = []
    target = topo.internal["by_user" if source == "segment" else "by_contact"].name
    for ev in events:
        key = key_for(ev)
        value = encode(ev)
        if len(value) > MAX_RECORD_BYTES:  # the broker would refuse it for good: dead letter
            errors.append(EventError("oversize", f"the parsed event is {len(value)} bytes, "
                                     f"above the {MAX_RECORD_BYTES} byte record limit"))
            continue
        ctx.count(metrics.events_in, source,
                  getattr(ev, "type", None) or getattr(ev, "event", "event"))
        out.append((target, key.encode() if key else None, value))
    for err in errors:
        ctx.count(metrics.dead_lettered_ingest, source, err.reason)
        out.append((topo.internal["dead_letter"].name, m.key, dead_letter(
            stage="ingest", reason=err.reason, message=err.message, original=m.value,
            source={**_source(m), "input": source, "key": _decode_key(m.key)})))
    out += ingest_outs(rt, source, m, events, errors, batch is not None)
    if batch is None:
        ctx.flush()
    return out


def _decode_key(k: bytes | None) -> str | None:
    return None if k is None else k.decode("utf-8", "replace")


# ------------------------------------------------------------------------------ state


def _sink_outputs(rt: Runtime, ctx: BatchContext, records: list[Any]) -> list[Out]:
    out = []
    sinks = rt.topology.destinations
    routed = rt.metrics.routed
    for r in records:
        ctx.count(routed, r.destination)
        out.append((sinks[r.destination].sink.name, r.key.encode(), r.dumps()))
    return out


def _state_input(rt: Runtime, batch: BatchContext | None, m: Any, table: str, cls: type,
                 ) -> tuple[BatchContext, str | None, Any, Any, list[Out] | None]:
    """(batch context, key, decoded internal message, current state or None, None) for a
    record of a state agent; (context, key, None, None, its dead letter and outcome) for an
    envelope that does not decode. Without a batch, the context is the record's own (flushed
    by the caller)."""
    ctx = batch or BatchContext(rt, direct=False)
    key = _decode_key(m.key)
    try:
        msg = decode(m.value)
    except (ValueError, TypeError, RecursionError) as e:  # TypeError: a null value
        dead = [_internal_dead_letter(rt, ctx, m, str(e)), *routing_dead_outs(
            rt, table, m, "bad_envelope", str(e), batch is not None)]
        if batch is None:
            ctx.flush_counts()
        return ctx, key, None, None, dead
    return ctx, key, msg, (ctx.load(table, key, cls) if key else None), None


def _routed(rt: Runtime, ctx: BatchContext, res: Any) -> list[Out]:
    """Count a routing result's drops; its sink records as outputs."""
    for d in res.drops:
        ctx.count(rt.metrics.dropped, *d)
    return _sink_outputs(rt, ctx, res.sink_records)


def user_outputs(rt: Runtime, cfg: RoutingConfig, m: Any, now: float,
                 batch: BatchContext | None = None) -> list[Out]:
    ctx, key, msg, user, dead = _state_input(rt, batch, m, "users", KnownUser)
    if dead is not None:
        return dead
    if isinstance(msg, SweepPending):
        if user is None:
            return []
        res = sweep_pending(user, cfg, now)
    else:
        res = route_user_event(msg, user, cfg, now, _source(m))
    if res.changed and res.user is not None and key:
        ctx.set("users", key, res.user.dumps(), res.user)
        _note_holds(rt, "users", key, res.user.pending)
    _count_holds(rt, ctx, res)
    out = _routed(rt, ctx, res) + routing_outs(rt, "users", msg, res, batch is not None)
    by_contact = rt.topology.internal["by_contact"].name
    by_user = rt.topology.internal["by_user"].name
    out += [(by_contact, u.email_key.encode(), encode(u)) for u in res.contact_updates]
    out += [(by_user, f.user_id.encode(), encode(f)) for f in res.forwards]
    if batch is None:
        ctx.flush()
    return out


def _count_holds(rt: Runtime, ctx: BatchContext, res: Any) -> None:
    """The holds of a state-stage result (held, released, expired, overflow)."""
    if res.holds:
        count_holds(rt, ctx, res)


def _note_holds(rt: Runtime, table: str, key: str, pending: list[Any],
                not_before: float = 0.0) -> None:
    """Keep the sweeper's index of keys holding inputs (streamproc/worker/holds_sweep.py)."""
    idx = index(rt)
    if pending or key in idx.keys[table]:  # a copy: the batch's next event of the key may
        idx.note(table, key, list(pending), not_before)  # append to the state's own list


def contact_outputs(rt: Runtime, cfg: RoutingConfig, m: Any, now: float,
                    batch: BatchContext | None = None) -> list[Out]:
    ctx, key, msg, contact, dead = _state_input(rt, batch, m, "contacts", Contact)
    if dead is not None:
        return dead
    res = route_contact_event(msg, contact, cfg, _source(m), now=now)
    if res.changed and res.contact is not None and key:
        ctx.set("contacts", key, res.contact.dumps(), res.contact)
        _note_holds(rt, "contacts", key, res.contact.pending)
    _count_holds(rt, ctx, res)
    out = _routed(rt, ctx, res) + routing_outs(rt, "contacts", msg, res, batch is not None)
    if batch is None:
        ctx.flush()
    return out


def _internal_dead_letter(rt: Runtime, ctx: BatchContext, m: Any, why: str) -> Out:
    ctx.count(rt.metrics.dead_lettered_ingest, "internal", "bad_envelope")  # with the batch
    return (rt.topology.internal["dead_letter"].name, m.key, dead_letter(
        stage="routing", reason="bad_envelope", message=why, original=m.value,
        source=_source(m)))


# ------------------------------------------------------------------------------ wiring


def register(rt: Runtime) -> None:
    app, topo, settings = rt.app, rt.topology, rt.settings
    cfg = RoutingConfig.from_settings(settings, topo.enabled)
    raw = dict(key_serializer="raw", value_serializer="raw")

    def topic(spec: Any) -> Any:
        t = app.topic(spec.name, partitions=spec.partitions, **raw)
        rt.topics[spec.name] = t
        return t

    for source, spec in topo.inputs.items():
        _ingest_agent(rt, source, topic(spec))

    by_user = topic(topo.internal["by_user"])
    by_contact = topic(topo.internal["by_contact"])
    rt.tables["users"] = app.Table("known-users", partitions=by_user.partitions,
                                   **table_kwargs(STATE_STORE_OPTIONS))
    rt.tables["contacts"] = app.Table("contacts", partitions=by_contact.partitions,
                                      **table_kwargs(STATE_STORE_OPTIONS))
    rt.table_writers = {
        name: TableWriter(rt.tables[name], rt.output.started) for name in ("users", "contacts")}
    _state_agent(rt, "users", by_user,
                 lambda m, now, batch: user_outputs(rt, cfg, m, now, batch))
    _state_agent(rt, "contacts", by_contact,
                 lambda m, now, batch: contact_outputs(rt, cfg, m, now, batch))
    if cfg.hold_seconds > 0:
        register_sweeper(rt, cfg)

    from streamproc.worker.deliver_agents import register_delivery

    register_delivery(rt, topic)


def _ingest_agent(rt: Runtime, source: str, topic: Any) -> None:
    batches = batches_of(rt, topic, INGEST_BATCH, WITHIN)

    async def ingest(stream: Any) -> None:
        async for taken in batches():
            with taken as events:
                batch = BatchContext(rt)
                out: list[Out] = []
                _discard_outcomes(rt)
                for ev in events:
                    out += ingest_outputs(rt, source, ev.message, batch)
                await rt.output.send_all(out + take_outcomes(rt))
                batch.flush_counts()

    rt.app.agent(topic, name=f"streamproc.ingest.{source}")(ingest)


def _discard_outcomes(rt: Runtime) -> Any:
    """At an agent batch's start, the outcome stash without what a batch that failed before
    take_outcomes left in it (that batch is read again); rt.outcomes."""
    if rt.outcomes is not None:
        rt.outcomes.rollback()
    return rt.outcomes


StateHandler = Callable[[Any, float, "BatchContext"], list[Out]]


def _why(e: BaseException) -> str:
    """A routing crash as text for its dead letter (an exception whose str() fails too)."""
    try:
        return f"{type(e).__name__}: {e}"
    except Exception:  # noqa: BLE001
        return type(e).__name__
_STATE = {"users": KnownUser, "contacts": Contact}


def _state_agent(rt: Runtime, name: str, topic: Any, handle: StateHandler) -> None:
    batches = batches_of(rt, topic, STATE_BATCH, WITHIN)

    async def process(stream: Any) -> None:
        async for taken in batches():
            with taken as events:
                await _process_state_batch(rt, name, events, handle)

    rt.app.agent(topic, name=f"streamproc.{name}")(process)


async def _process_state_batch(rt: Runtime, name: str, events: list[Any],
                               handle: StateHandler) -> None:
    out: list[Out] = []
    now = time.time()
    batch = BatchContext(rt)
    outcomes = _discard_outcomes(rt)
    rows = outcomes.routes if outcomes is not None else []  # a state stage stashes only these
    batch.undo = {}
    counts = batch.counts
    for ev in events:
        batch.event = ev
        mark, counted = len(rows), len(counts)
        if batch.undo:
            batch.undo.clear()
        try:
            out += handle(ev.message, now, batch)
        except Exception as e:  # a routing bug must not ack-and-lose the record
            del rows[mark:]  # its route rows name sinks that are not sent, nor its counts,
            del counts[counted:]  # nor is its state:
            for table, key in batch.revert():  # what it released stays held
                try:  # the sweeper's index, from the state as it was (it decoded before); not
                    _note_holds(rt, table, key, getattr(  # due at once: a sweep that crashed
                        batch.load(table, key, _STATE[table]), "pending", None) or [],
                        not_before=time.time() + RESWEEP_S)  # waits
                except Exception:  # noqa: BLE001 - the next input of the key notes it again
                    log.exception("holds of %s %s not noted", table, key)
            log.exception("routing crashed on %s %s:%s", name, ev.message.partition,
                          ev.message.offset)
            why = _why(e)
            batch.count(rt.metrics.dead_lettered_ingest, name, "routing_error")
            out.append((rt.topology.internal["dead_letter"].name, ev.message.key,
                        dead_letter(stage="routing", reason="routing_error", message=why,
                                    original=ev.message.value,
                                    source=_source(ev.message))))
            out += routing_dead_outs(rt, name, ev.message, "routing_error", why, True)
    out += take_outcomes(rt)  # the batch's outcome records (streamproc trace)
    staged = batch.flush_tables()  # changelog records of the changed keys, sent now
    try:
        await rt.output.send_all(out)
    except BaseException:  # no changelog send of a failed batch may land after its retry's
        if staged:
            await asyncio.wait([s.sent for s in staged])
        raise
    await runtime.wait_all(s.sent for s in staged)  # state changes on the broker, then
    for s in staged:  # into the stores: a batch that failed left them as they were
        s.apply()
    batch.flush_counts()
