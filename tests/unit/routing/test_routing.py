"""Fixture-driven routing tests: one case per file in tests/fixtures/routing/. Each case runs
its inputs through parse -> envelope -> users/contacts routing with in-memory tables (values
stored as bytes, like the faust tables), and checks every sink record and drop exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.core.events import parse_clevertap, parse_mailjet, parse_mailmodo, parse_segment
from streamproc.core.events.common import normalise_email
from streamproc.core.records import DESTINATIONS, SinkRecord, delivery_id
from streamproc.core.routing import (
    REASONS, ContactUpdate, Drop, RoutingConfig, decode, encode, key_for, route_contact_event,
    route_user_event, sweep_pending,
)
from streamproc.core.routing.drops import SOURCES
from streamproc.core.routing.messages import MergeUser, SweepContact, SweepPending
from streamproc.core.state.model import Contact, KnownUser

FIXTURES = Path(__file__).parents[2] / "fixtures" / "routing"
CASES = sorted(FIXTURES.glob("*.json"))
DEFAULT_NOW = 1714560000.0  # 2024-05-01T10:40:00Z
ID = "$id"  # in an expected payload: this record's own delivery id
HOLD_COUNTS = ("held", "hold_released", "hold_expired", "hold_overflow")  # UserResult fields


class Pipeline:
    """The users and contacts stages wired as the agents wire them, minus Kafka."""

    def __init__(self, cfg: RoutingConfig, prior: dict[str, Any]) -> None:
        self.cfg = cfg
        self.users: dict[str, bytes] = {}
        self.contacts: dict[str, bytes] = {}
        self.records: list[SinkRecord] = []
        self.drops: list[Drop] = []
        self.contact_updates: list[ContactUpdate] = []
        self.holds = dict.fromkeys(HOLD_COUNTS, 0)  # the users stage's held-track counts
        for u in [prior.get("user")] + list(prior.get("users") or []):
            if u:
                self.users[u["user_id"]] = KnownUser.from_dict(u).dumps()
        for c in [prior.get("contact")] + list(prior.get("contacts") or []):
            if c:
                self.contacts[normalise_email(c["email"])] = Contact.from_dict(c).dumps()

    def feed(self, step: dict[str, Any]) -> None:
        kind, now, source = step["kind"], step.get("now", DEFAULT_NOW), step.get("source")
        raw = json.dumps(step.get("event")).encode()
        if kind == "segment":
            self.by_user(parse_segment(raw), now, source)
        elif kind == "mailmodo":
            self.by_contact(parse_mailmodo(raw), now, source)
        elif kind == "mailjet":
            events, errors = parse_mailjet(raw)
            assert not errors, errors
            for ev in events:
                self.by_contact(ev, now, source)
        elif kind == "clevertap":
            triggers, errors = parse_clevertap(raw, campaign_id=step.get("campaign_id"))
            assert not errors, errors
            for trig in triggers:
                self.by_contact(trig, now, source)
        elif kind == "contact_update":
            self.by_contact(ContactUpdate(**step["event"]), now, source)
        elif kind == "sweep_contact":
            self.by_contact(SweepContact(email_key=step["email_key"]), now, source)
        elif kind == "sweep":
            user = KnownUser.loads(self.users[step["user_id"]])
            self.apply_user(step["user_id"], sweep_pending(user, self.cfg, now), now)
        else:
            raise AssertionError(f"unknown input kind {kind}")

    def by_user(self, msg: Any, now: float, source: Any) -> None:
        msg = decode(encode(msg))  # through the internal topic, as the agents do
        key = key_for(msg)
        assert key
        user = KnownUser.loads(self.users[key]) if key in self.users else None
        self.apply_user(key, route_user_event(msg, user, self.cfg, now, source), now)

    def apply_user(self, key: str, res: Any, now: float) -> None:
        if res.changed and res.user is not None:
            self.users[key] = res.user.dumps()
        self.records += res.sink_records
        self.drops += res.drops
        for name in HOLD_COUNTS:
            self.holds[name] += getattr(res, name)
        for update in res.contact_updates:
            self.contact_updates.append(update)
            self.by_contact(update, now, None)
        for forward in res.forwards:
            assert isinstance(forward, MergeUser)
            self.by_user(forward, now, None)

    def by_contact(self, msg: Any, now: float, source: Any) -> None:
        msg = decode(encode(msg))
        key = key_for(msg)
        assert key
        contact = Contact.loads(self.contacts[key]) if key in self.contacts else None
        res = route_contact_event(msg, contact, self.cfg, source, now=now)
        if res.changed and res.contact is not None:
            self.contacts[key] = res.contact.dumps()
        self.records += res.sink_records
        self.drops += res.drops


def _config(c: dict[str, Any]) -> RoutingConfig:
    return RoutingConfig(
        enabled=frozenset(c.get("enabled", DESTINATIONS)),
        identify_email_from_state=c.get("identify_email_from_state", False),
        hold_seconds=c.get("hold_seconds", 0.0),
        send_blocked=c.get("send_blocked", False),
        max_pending=c.get("max_pending", 100),
    )


def _with_id(value: Any, rid: str) -> Any:
    if value == ID:
        return rid
    if isinstance(value, dict):
        return {k: _with_id(v, rid) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_id(v, rid) for v in value]
    return value


def _check_record(i: int, got: SinkRecord, want: dict[str, Any]) -> None:
    where = f"sink record {i}"
    assert got.destination == want["destination"] and got.op == want["op"], where
    assert got.key == want["key"], where
    assert got.payload == _with_id(want["payload"], got.id), where
    if "source_id" in want:
        expected_id = delivery_id(want["source_id"], got.destination, got.op, want.get("part", ""))
        assert got.id == expected_id, f"{where}: delivery id"
        assert got.source.get("message_id") == want["source_id"], where
    if "source" in want:
        assert got.source == want["source"], where


def _check_subset(what: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    for k, v in want.items():
        if k == "pending_count":
            assert len(got["pending"]) == v, f"{what}.pending"
        else:
            assert got.get(k) == v, f"{what}.{k}: {got.get(k)!r} != {v!r}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_routing_case(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case.get("description"), "every case says what it checks"
    pipe = Pipeline(_config(case.get("config") or {}), case.get("prior_state") or {})
    steps = case["input"] if isinstance(case["input"], list) else [case["input"]]
    for step in steps:
        pipe.feed(step)
    expected = case["expected"]

    want_records = expected.get("sink_records", [])
    got_summary = [(r.destination, r.op, r.key, r.payload) for r in pipe.records]
    assert len(pipe.records) == len(want_records), got_summary
    for i, (got, want) in enumerate(zip(pipe.records, want_records)):
        _check_record(i, got, want)

    want_drops = sorted(tuple(d) for d in expected.get("drops", []))
    assert sorted(tuple(d) for d in pipe.drops) == want_drops
    for d in pipe.drops:
        assert d.source in SOURCES and d.destination in DESTINATIONS and d.reason in REASONS

    if "contact_updates" in expected:
        assert len(pipe.contact_updates) == len(expected["contact_updates"])
        for i, (got, want) in enumerate(zip(pipe.contact_updates, expected["contact_updates"])):
            _check_subset(f"contact_update {i}", encode_fields(got), want)
    state = expected.get("state") or {}
    for key, want in (state.get("users") or {}).items():
        assert key in pipe.users, f"no known-user state for {key}"
        _check_subset(f"users[{key}]", json.loads(pipe.users[key]), want)
    for key, want in (state.get("contacts") or {}).items():
        assert key in pipe.contacts, f"no contact state for {key}"
        _check_subset(f"contacts[{key}]", json.loads(pipe.contacts[key]), want)
    for key in state.get("no_users", []):
        assert key not in pipe.users, f"unexpected known-user state for {key}"
    for key in state.get("no_contacts", []):
        assert key not in pipe.contacts, f"unexpected contact state for {key}"


def encode_fields(update: ContactUpdate) -> dict[str, Any]:
    doc = json.loads(encode(update))
    doc.pop("kind")
    return doc


def test_there_are_enough_cases_and_every_reason_is_covered() -> None:
    assert len(CASES) >= 45
    seen = set()
    for path in CASES:
        for d in json.loads(path.read_text())["expected"].get("drops", []):
            seen.add(d[2])
    assert seen == set(REASONS)


# ------------------------------------------------------------------ envelopes and integrations


def test_envelopes_round_trip_every_kind() -> None:
    from streamproc.core.events.model import (
        CleverTapTrigger, MailjetEvent, MailmodoActivity, SegmentEvent,
    )
    from streamproc.core.routing.messages import SweepPending

    seg = parse_segment(json.dumps({"type": "track", "userId": "u1", "event": "E", "messageId": "m",
                                    "timestamp": "2024-05-01T10:00:00Z"}).encode())
    objs = [
        seg,
        MailmodoActivity("opened", "A@x.io", "a@x.io", 1.5, {"form_responses": {"q": "a"}},
                         "ct", "e1", {"integrations": {"Segment": False}, "other": 1}),
        MailjetEvent("sent", "a@x.io", "a@x.io", 2.0, "36893488147419103233", {"n": "1"}, "e2", {}),
        CleverTapTrigger("a@x.io", "a@x.io", "c1", {"d": 1}, {"c": 2}, None, "e3", {}),
        ContactUpdate("A@x.io", "a@x.io", "u1", None, {"plan": "pro"}, 3.0, True, "m",
                      {"plan": 2.0}),
        MergeUser("u2", "anon", KnownUser("anon").to_dict(), 4.0, "m2"),
        SweepPending("u3"),
    ]
    for obj in objs:
        back = decode(encode(obj))
        assert type(back) is type(obj)
        if isinstance(obj, (SegmentEvent, MailmodoActivity, MailjetEvent, CleverTapTrigger)):
            # only the integrations object of the original message travels
            assert back.raw == ({"integrations": {"Segment": False}}
                                if isinstance(obj, MailmodoActivity) else {})
            obj.raw = back.raw
        assert back == obj
    assert [key_for(o) for o in objs] == ["u1", "a@x.io", "a@x.io", "a@x.io", "a@x.io", "u2", "u3"]


def test_envelope_errors_are_value_errors() -> None:
    for bad in (b"not json", b"[]", b'{"kind": "nope"}', b'{"kind": "sweep_pending"}'):
        with pytest.raises(ValueError):
            decode(bad)


def test_alias_is_keyed_by_previous_id() -> None:
    alias = parse_segment(json.dumps({"type": "alias", "userId": "u9", "previousId": "anon-1",
                                      "timestamp": "2024-05-01T10:00:00Z"}).encode())
    assert key_for(alias) == "anon-1"


@pytest.mark.parametrize(("integrations", "name", "enabled"), [
    (None, "Mailmodo", True),
    ({}, "Mailmodo", True),
    ({"All": False}, "Mailmodo", False),
    ({"All": False, "Mailmodo": True}, "Mailmodo", True),
    ({"All": False, "Mailmodo": True}, "Mailjet", False),
    ({"Mailmodo": False}, "Mailmodo", False),
    ({"Mailmodo": False}, "CleverTap", True),
    ({"mailmodo": False}, "Mailmodo", True),
    ({"All": False, "Segment": {"option": 1}}, "Segment", True),
    ({"All": True, "Mailjet": None}, "Mailjet", True),
])
def test_enabled_for(integrations: Any, name: str, enabled: bool) -> None:
    from streamproc.core.routing import enabled_for

    assert enabled_for(integrations, name) is enabled


# ------------------------------------------------------------------ held-track counts
# The users stage counts held tracks (UserResult.held, hold_released, hold_expired,
# hold_overflow) for the metrics; the routing and its drops stay what the fixtures expect.


def _run_case(name: str) -> Pipeline:
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    pipe = Pipeline(_config(case.get("config") or {}), case.get("prior_state") or {})
    for step in case["input"] if isinstance(case["input"], list) else [case["input"]]:
        pipe.feed(step)
    return pipe


@pytest.mark.parametrize(("name", "counts"), [
    ("r05_grace_released_by_identify", {"held": 1, "hold_released": 1}),
    ("r05_grace_identify_after_hold_time_releases", {"held": 1, "hold_released": 1}),
    ("r05_grace_sweep_drops_expired", {"held": 1, "hold_expired": 1}),
    ("r05_grace_sweep_keeps_fresh", {"held": 1}),
    ("r05_grace_bounded_pending", {"held": 3, "hold_overflow": 1}),
    ("r06_alias_releases_held_track", {"held": 1, "hold_released": 1}),
    ("r05_grace_integrations_off_not_held", {}),  # gated: dropped at once, never held
    ("r05_track_unknown_user", {}),  # no grace window: dropped unknown_user, never held
    ("r04_identify_then_track", {}),  # a known user's track is routed, never held
])
def test_hold_counts_of_the_grace_window_cases(name: str, counts: dict[str, int]) -> None:
    assert _run_case(name).holds == {k: counts.get(k, 0) for k in HOLD_COUNTS}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_hold_counts_account_for_every_held_track(path: Path) -> None:
    """Every track held (before the case or during it) is released, dropped (expired or
    overflow) or still held at the end; an expired or pushed-out hold is one unknown_user
    drop per destination it would have gone to, like a never-identified user's track."""
    case = json.loads(path.read_text())
    prior = case.get("prior_state") or {}
    pending_before = sum(len((u or {}).get("pending") or [])
                         for u in [prior.get("user")] + list(prior.get("users") or []))
    pipe = _run_case(path.stem)
    h = pipe.holds
    pending_after = sum(len(KnownUser.loads(v).pending) for v in pipe.users.values())
    assert pending_before + h["held"] == (h["hold_released"] + h["hold_expired"]
                                          + h["hold_overflow"] + pending_after), h
    if h["hold_expired"] + h["hold_overflow"]:
        assert ("segment", "mailmodo", "unknown_user") in {tuple(d) for d in pipe.drops}


def _track(n: int, user_id: str = "u1", event: str = "Viewed", **props: Any) -> Any:
    return parse_segment(json.dumps({
        "type": "track", "userId": user_id, "messageId": f"m-{user_id}-{n}", "event": event,
        "timestamp": "2024-05-01T10:00:00Z", "properties": props}).encode())


def test_an_expired_audience_hold_counts_once_but_drops_for_both_destinations() -> None:
    cfg = RoutingConfig(hold_seconds=60.0)
    held = route_user_event(_track(1, event="Audience Entered", audience_key="vip"), None, cfg,
                            DEFAULT_NOW)
    assert (held.held, held.drops) == (1, [])
    swept = sweep_pending(held.user, cfg, DEFAULT_NOW + 61)
    assert (swept.hold_expired, swept.hold_released, swept.hold_overflow) == (1, 0, 0)
    assert sorted(tuple(d) for d in swept.drops) == [("segment", "mailjet", "unknown_user"),
                                                    ("segment", "mailmodo", "unknown_user")]


def test_a_merge_beyond_the_held_track_limit_counts_the_tracks_it_leaves_out() -> None:
    from streamproc.core.state.model import MAX_PENDING

    cfg = RoutingConfig(hold_seconds=300.0)
    anon = target = None
    for n in range(MAX_PENDING):
        anon = route_user_event(_track(n, "anon"), anon, cfg, DEFAULT_NOW).user
    for n in range(3):
        target = route_user_event(_track(n, "u2"), target, cfg, DEFAULT_NOW).user
    assert anon is not None and target is not None
    merge = MergeUser("u2", "anon", anon.to_dict(), DEFAULT_NOW, "m-alias")
    res = route_user_event(decode(encode(merge)), target, cfg, DEFAULT_NOW + 1)
    assert len(res.user.pending) == MAX_PENDING
    assert (res.hold_overflow, res.held, res.hold_expired, res.hold_released) == (3, 0, 0, 0)


def test_user_outputs_counts_held_tracks_into_the_metrics() -> None:
    """The users agent's counts: streamproc_tracks_held_total, _holds_released_total and
    _holds_dropped_total{reason=expired|overflow} (source segment, waits_for unknown_user),
    next to the unchanged dropped counter."""
    from types import SimpleNamespace

    from streamproc.core.metrics import Metrics
    from streamproc.worker.agents import BatchContext, user_outputs

    names = {k: SimpleNamespace(name=f"t.{k}") for k in ("by_user", "by_contact", "dead_letter")}
    rt = SimpleNamespace(
        metrics=Metrics(), table_writers={}, outcomes=None, hold_index=None, tables={"users": {}},
        topology=SimpleNamespace(internal=names, destinations={
            d: SimpleNamespace(sink=SimpleNamespace(name=f"t.sink.{d}")) for d in DESTINATIONS}))
    cfg = RoutingConfig(hold_seconds=60.0, max_pending=2)
    offsets = iter(range(100))

    def feed(msg: Any, now: float, batch: BatchContext | None = None) -> list[Any]:
        m = SimpleNamespace(key=key_for(msg).encode(), value=encode(msg), topic="t.by_user",
                            partition=0, offset=next(offsets))
        return user_outputs(rt, cfg, m, now, batch)

    def counts() -> dict[str, Any]:
        snap = rt.metrics.snapshot()
        user = ("segment", "unknown_user")
        return {"held": snap["tracks_held"][user], "released": snap["holds_released"][user],
                "dropped": {k[:1]: v for k, v in snap["holds_dropped"].items() if k[1:] == user},
                "unknown_user": snap["dropped"].get(("segment", "mailmodo", "unknown_user"), 0)}

    before = counts()
    assert before == {"held": 0, "released": 0, "dropped": {("expired",): 0, ("overflow",): 0},
                      "unknown_user": 0}  # exported at 0 from the start
    batch = BatchContext(rt, direct=False)  # an agent batch: counted at its end
    for n in range(3):
        feed(_track(n), DEFAULT_NOW, batch)
    assert counts() == before
    batch.flush()
    assert counts() == {"held": 3, "released": 0,
                        "dropped": {("expired",): 0, ("overflow",): 1}, "unknown_user": 1}
    feed(SweepPending("u1"), DEFAULT_NOW + 61)  # both held tracks expired
    assert counts()["dropped"] == {("expired",): 2, ("overflow",): 1}
    assert counts()["unknown_user"] == 3
    feed(_track(9), DEFAULT_NOW + 100)
    identify = parse_segment(json.dumps({
        "type": "identify", "userId": "u1", "messageId": "m-id", "traits": {"email": "a@x.io"},
        "timestamp": "2024-05-01T10:02:00Z"}).encode())
    out = feed(identify, DEFAULT_NOW + 110)
    assert counts() == {"held": 4, "released": 1,
                        "dropped": {("expired",): 2, ("overflow",): 1}, "unknown_user": 3}
    assert [t for t, _k, _v in out].count("t.sink.mailmodo") == 2  # the upsert and the track
