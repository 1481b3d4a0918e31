"""The agents' outcome stash holds one batch at a time (review of cae7ddb): an input whose
routing crashed sends no route rows (it is dead-lettered, nothing was sent for it), and rows a
failed batch left behind are not sent with the next batch (the failed one is read again)."""

from __future__ import annotations

import asyncio
import time
import json
from types import SimpleNamespace
from typing import Any

from streamproc.config.settings import load_settings
from streamproc.core.events.segment import parse_segment
from streamproc.core.metrics import Metrics
from streamproc.core.outcome_codec import decode_docs
from streamproc.core.records import DESTINATIONS
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.messages import encode, key_for
from streamproc.worker import agents
from streamproc.worker.outcomes import Outcomes


class _Output:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_all(self, records: list[Any]) -> int:
        self.sent += records
        return len(records)


def _rt() -> Any:
    names = {k: SimpleNamespace(name=f"t.{k}") for k in ("by_user", "by_contact", "dead_letter")}
    return SimpleNamespace(
        metrics=Metrics(), table_writers={}, hold_index=None, tables={"users": {}},
        outcomes=Outcomes(load_settings({"STREAMPROC_MAILMODO_API_KEY": "k"}, strict=False),
                          "t.outcomes"),
        output=_Output(),
        topology=SimpleNamespace(internal=names, destinations={
            d: SimpleNamespace(sink=SimpleNamespace(name=f"t.sink.{d}")) for d in DESTINATIONS}))


class _Ev:  # a faust event: the table API keeps a weak reference to the current one
    def __init__(self, message: Any) -> None:
        self.message = message


def _event(i: int, user: str = "u1") -> Any:
    doc = ({"type": "identify", "traits": {"email": f"{user}@x.io"}} if i == 0 else
           {"type": "track", "event": "Clicked"})
    ev = parse_segment(json.dumps({**doc, "userId": user, "messageId": f"m{i}",
                                   "timestamp": 1714557600 + i}).encode())
    return _Ev(SimpleNamespace(
        key=key_for(ev).encode(), value=encode(ev), topic="t.by_user", partition=0, offset=i))


def _routed_ids(rt: Any) -> list[str]:
    docs = [d for topic, _k, v, *_ in rt.output.sent if topic == "t.outcomes"
            for d in decode_docs(v)]
    return sorted(d["m"] for d in docs if d["k"] == "route")


def test_a_crashed_input_leaves_no_route_rows() -> None:
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)

    def handle(m: Any, now: float, batch: Any) -> list[Any]:
        out = agents.user_outputs(rt, cfg, m, now, batch)  # its route row is stashed
        if m.offset == 2:
            raise RuntimeError("a bug after routing")
        return out

    asyncio.run(agents._process_state_batch(rt, "users", [_event(i) for i in range(4)], handle))
    assert _routed_ids(rt) == ["m0", "m1", "m3"]
    dead = [json.loads(v) for topic, _k, v, *_ in rt.output.sent if topic == "t.dead_letter"]
    assert [d["reason"] for d in dead] == ["routing_error"]


def test_a_failed_batchs_leftovers_are_not_sent_with_the_next() -> None:
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    batch = agents.BatchContext(rt, direct=False)
    agents.user_outputs(rt, cfg, _event(0, "ghost").message, 0.0, batch)  # stashed, never taken
    assert rt.outcomes.routes  # a batch that failed before take_outcomes
    asyncio.run(agents._process_state_batch(
        rt, "users", [_event(0), _event(1)],
        lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    assert _routed_ids(rt) == ["m0", "m1"]


def _dead_docs(rt: Any) -> list[dict[str, Any]]:
    return [d for topic, _k, v, *_ in rt.output.sent if topic == "t.outcomes"
            for d in decode_docs(v) if d["k"] == "dead"]


def test_a_crashed_input_is_traced_as_dead_lettered_at_routing() -> None:
    """Its dead letter has an outcome too: `streamproc trace m2` ends in it, not after the
    `in` row with nothing (a support engineer would look for a lost record)."""
    from streamproc.ops.trace import timeline
    from streamproc.ops.trace_text import describe

    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)

    def handle(m: Any, now: float, batch: Any) -> list[Any]:
        if m.offset == 2:
            raise RuntimeError("a bug in routing, token=abcd1234")
        return agents.user_outputs(rt, cfg, m, now, batch)

    asyncio.run(agents._process_state_batch(rt, "users", [_event(i) for i in range(4)], handle))
    dead = _dead_docs(rt)
    assert [(d["m"], d["stage"], d["st"], d["r"]) for d in dead] == [
        ("m2", "routing", "users", "routing_error")]
    assert "abcd1234" not in dead[0]["msg"] and "RuntimeError" in dead[0]["msg"]
    assert dead[0]["u"] == "u1"  # found by `streamproc trace u1` too
    found = timeline("m2", dead)
    assert found["destinations"] == {"*": {"state": "dead_lettered", "reason": "routing_error",
                                           "stage": "routing"}}
    assert describe(dead[0])[1].startswith("at routing (users): routing_error")


def test_an_envelope_that_does_not_decode_is_traced_by_its_raw_id() -> None:
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    bad = _Ev(SimpleNamespace(key=b"u1", value=b'{"kind":"nope","message_id":"m9"}',
                              topic="t.by_user", partition=1, offset=7))
    worse = _Ev(SimpleNamespace(key=b"u1", value=b"\xff", topic="t.by_user", partition=1,
                                offset=8))
    asyncio.run(agents._process_state_batch(
        rt, "users", [bad, worse], lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    assert sorted((d["m"], d["st"], d["r"]) for d in _dead_docs(rt)) == [
        ("m9", "users", "bad_envelope"), ("t.by_user:1:8", "users", "bad_envelope")]
    # without an agent batch (tools, tests) the outcome comes back as a record
    out = agents.user_outputs(rt, cfg, worse.message, 0.0)
    assert [d["r"] for topic, _k, v, *_ in out if topic == "t.outcomes"
            for d in decode_docs(v)] == ["bad_envelope"]


def _envelope(value: Any, offset: int, topic: str = "t.by_user") -> Any:
    return _Ev(SimpleNamespace(key=b"u1", value=value, topic=topic, partition=0, offset=offset))


def test_a_record_no_envelope_can_come_from_is_dead_lettered_and_the_batch_goes_on() -> None:
    """A null value (a tombstone) or an envelope nested too deep for the decoder: dead-lettered
    as bad envelopes with their outcome, the batch's other inputs routed (review of 4115eba:
    the outcome code re-raised from the crash path and the batch was read again forever)."""
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    deep = (b'{"kind":"sweep_pending","user_id":"u1","x":' + b"[" * 100_000
            + b"]" * 100_000 + b"}")
    asyncio.run(agents._process_state_batch(
        rt, "users", [_event(0), _envelope(None, 5), _envelope(deep, 6), _event(1)],
        lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    assert _routed_ids(rt) == ["m0", "m1"]
    dead = [json.loads(v) for topic, _k, v, *_ in rt.output.sent if topic == "t.dead_letter"]
    assert [d["reason"] for d in dead] == ["bad_envelope", "bad_envelope"]
    assert sorted(d["m"] for d in _dead_docs(rt)) == ["t.by_user:0:5", "t.by_user:0:6"]


def test_an_envelope_that_does_not_decode_is_traced_by_the_id_its_input_is_traced_by() -> None:
    """A Mailjet event's id is its event_id (its MessageID is shared by the email's events);
    a derived envelope's is the source_id of the Segment message it came from."""
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    mailjet = b'{"kind":"mailjet","message_id":"1942","event_id":"1942:open:1714557600"}'
    update = b'{"kind":"contact_update","email_key":5,"source_id":"seg-42"}'
    asyncio.run(agents._process_state_batch(
        rt, "users", [_envelope(mailjet, 1), _envelope(update, 2)],
        lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    assert sorted(d["m"] for d in _dead_docs(rt)) == ["1942:open:1714557600", "seg-42"]


def test_a_crashed_input_leaves_the_state_as_it_was_so_what_it_released_stays_held() -> None:
    """An identify that released its user's held track and then crashed (review of 4115eba):
    the track's sink records went with the crashed input's outputs, so the state change that
    released it must go too. The track stays held (and is released by the next identify or a
    redrive of the crashed one), not lost with a trace ending in `held`."""
    from streamproc.core.state.model import KnownUser

    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    track, identify = _event(1, "u2"), _event(0, "u2")  # the track first: it is held

    def crash_after_routing(m: Any, now: float, batch: Any) -> list[Any]:
        out = agents.user_outputs(rt, cfg, m, now, batch)
        if m.offset == 0:
            raise RuntimeError("a bug after routing")
        return out

    asyncio.run(agents._process_state_batch(rt, "users", [track, identify],
                                            crash_after_routing))
    assert not [t for t, *_ in rt.output.sent if t.startswith("t.sink")]
    state = KnownUser.loads(rt.tables["users"]["u2"])
    assert len(state.pending) == 1  # the track, still held
    assert not state.emails  # and the identify's own change is not kept either
    rt.output.sent.clear()
    asyncio.run(agents._process_state_batch(  # the identify again (a redrive): released
        rt, "users", [identify], lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    sources = {json.loads(v)["source"].get("message_id")
               for t, _k, v, *_ in rt.output.sent if t.startswith("t.sink")}
    assert sources == {"m0", "m1"}  # the identify's own records, and the released track's
    assert not KnownUser.loads(rt.tables["users"]["u2"]).pending


def test_a_redriven_routing_dead_letter_is_traced_under_the_same_id_as_its_dead_outcome() -> None:
    """So the trace reads `redriven` after `dead-lettered at routing`, not two inputs."""
    from streamproc.ops.outcomes_cli import redrive_docs

    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    values = [b'{"kind":"contact_update","email_key":5,"source_id":"seg-42"}',
              b'{"kind":"mailjet","message_id":"1942","event_id":"1942:open:1714557600"}',
              b"not json"]
    asyncio.run(agents._process_state_batch(
        rt, "users", [_envelope(v, i) for i, v in enumerate(values)],
        lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    dlq = [(json.loads(v), v) for topic, _k, v, *_ in rt.output.sent if topic == "t.dead_letter"]
    plans = [SimpleNamespace(entry=SimpleNamespace(doc=doc, topic="t.dead_letter", partition=0,
                                                   offset=100 + i),
                             value=doc["original"].encode("latin-1"), topic="t.by_user")
             for i, (doc, _raw) in enumerate(dlq)]
    assert sorted(d["m"] for d in redrive_docs(plans)) == sorted(
        d["m"] for d in _dead_docs(rt)) == ["1942:open:1714557600", "seg-42", "t.by_user:0:2"]


def test_a_dead_lettered_input_is_found_by_its_person(tmp_path: Any) -> None:
    from streamproc.core.outcome_codec import person_hash
    from streamproc.ops.trace import TraceIndex, lookup

    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)

    def crash(m: Any, now: float, batch: Any) -> list[Any]:
        raise RuntimeError("a bug")

    asyncio.run(agents._process_state_batch(rt, "users", [_event(0, "jo@ex.io")], crash))
    [dead] = _dead_docs(rt)
    assert (dead["u"], dead["h"], dead.get("e")) == ("j***@ex.io", person_hash("jo@ex.io"), None)
    idx = TraceIndex(tmp_path / "index")
    outs = [o for o in rt.output.sent if o[0] == "t.outcomes"]
    idx.add([SimpleNamespace(partition=o[4], offset=i, value=o[2]) for i, o in enumerate(outs)])
    assert [t["message_id"] for t in lookup(idx, "Jo@Ex.io")] == ["m0"]
    idx.close()


def test_a_sweep_that_crashes_is_not_sent_again_at_the_next_tick() -> None:
    """Its state is reverted (the held track is still held), and the sweeper's index waits
    RESWEEP_S before the key is due again (review: noted anew as due at once, the crashing
    sweep was sent, and dead-lettered, at every tick)."""
    from unittest import mock

    from streamproc.core.routing.messages import SweepPending
    from streamproc.worker.holds_sweep import RESWEEP_S, index

    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    asyncio.run(agents._process_state_batch(  # a track of an unknown user: held
        rt, "users", [_event(1, "u2")], lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)))
    later = time.time() + 120  # the hold is due
    assert index(rt).due("users", later, 60.0) == ["u2"]
    sweep = _envelope(encode(SweepPending(user_id="u2")), 9)
    sweep.message.key = b"u2"

    def crash_after_routing(m: Any, now: float, batch: Any) -> list[Any]:
        agents.user_outputs(rt, cfg, m, now, batch)
        raise RuntimeError("a bug after the sweep's state change")

    with mock.patch.object(agents.time, "time", return_value=later):
        asyncio.run(agents._process_state_batch(rt, "users", [sweep], crash_after_routing))
    assert index(rt).due("users", later + 31, 60.0) == []
    assert index(rt).due("users", later + RESWEEP_S + 1, 60.0) == ["u2"]


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("no text")


def test_an_exception_that_cannot_be_printed_is_dead_lettered_too() -> None:
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)

    def crash(m: Any, now: float, batch: Any) -> list[Any]:
        raise _Unprintable()

    asyncio.run(agents._process_state_batch(rt, "users", [_event(0)], crash))
    dead = [json.loads(v) for topic, _k, v, *_ in rt.output.sent if topic == "t.dead_letter"]
    assert [(d["reason"], d["message"]) for d in dead] == [("routing_error", "_Unprintable")]


def _sample(metric: Any, **labels: str) -> float:
    for m in metric.collect():
        for s in m.samples:
            if s.name.endswith("_total") and s.labels == labels:
                return s.value
    return 0.0


def test_a_crashed_input_is_not_counted_as_routed() -> None:
    """Its sink records are not sent (it is dead-lettered), so the routed and dropped counts
    it made before crashing are not applied either; the inputs around it are counted."""
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)

    def handle(m: Any, now: float, batch: Any) -> list[Any]:
        out = agents.user_outputs(rt, cfg, m, now, batch)  # counted in the batch
        if m.offset == 1:
            raise RuntimeError("a bug after routing")
        return out

    asyncio.run(agents._process_state_batch(rt, "users", [_event(i) for i in range(3)], handle))
    sent = sum(1 for t, *_ in rt.output.sent if t == "t.sink.mailmodo")
    assert sent and _sample(rt.metrics.routed, destination="mailmodo") == sent
    assert _sample(rt.metrics.dead_lettered_ingest, source="users", reason="routing_error") == 1


def test_a_follow_ups_dead_outcome_says_it_is_one_and_where_it_was_read_from() -> None:
    """dv: a derived envelope (a contact update, an alias merge), shown by `trace` as the
    stage's dead letter; tp: the topic `dlq redrive` sends it back to."""
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    update = b'{"kind":"contact_update","email_key":5,"source_id":"seg-42"}'

    def crash(m: Any, now: float, batch: Any) -> list[Any]:
        raise RuntimeError("a bug")

    asyncio.run(agents._process_state_batch(rt, "users", [_envelope(update, 1), _event(2)],
                                            crash))
    docs = {d["m"]: d for d in _dead_docs(rt)}
    assert (docs["seg-42"].get("dv"), docs["seg-42"]["tp"]) == (1, "t.by_user")
    assert ("dv" not in docs["m2"], docs["m2"]["tp"]) == (True, "t.by_user")


class _FailOnce:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.calls = 0

    async def send_all(self, records: list[Any]) -> int:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("broker gone")
        self.sent += records
        return len(records)


def test_a_bad_envelope_of_a_batch_read_again_is_counted_once() -> None:
    """Review of 0d0db72: the bad_envelope count went to the metric at once, so a batch whose
    send failed (read again) counted it twice; it is a batch count like the others now."""
    import pytest

    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    rt.output = _FailOnce()
    events = [_event(0), _envelope(b"\xff", 9)]
    handle = lambda m, now, b: agents.user_outputs(rt, cfg, m, now, b)  # noqa: E731
    with pytest.raises(ConnectionError):
        asyncio.run(agents._process_state_batch(rt, "users", events, handle))
    asyncio.run(agents._process_state_batch(rt, "users", events, handle))
    sent = sum(1 for t, *_ in rt.output.sent if t == "t.sink.mailmodo")
    assert _sample(rt.metrics.routed, destination="mailmodo") == sent
    assert _sample(rt.metrics.dead_lettered_ingest, source="internal", reason="bad_envelope") == 1
