"""Holds: the same inputs give the same sink records whatever the order across topics (each
topic's own order kept), because an input waiting for state another topic updates is held
until that state arrives; expired holds are decided as without the state."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from test_routing import Pipeline

from streamproc.core.routing import RoutingConfig

A = "Ada@Example.com"
STREAMS = {  # per input topic, in that topic's order
    "segment": [
        {"kind": "segment", "event": {"type": "identify", "userId": "u1", "messageId": "i1",
                                      "timestamp": "2026-11-20T10:00:00Z",
                                      "traits": {"email": A, "plan": "pro"}}},
        {"kind": "segment", "event": {"type": "track", "userId": "u1", "messageId": "t1",
                                      "timestamp": "2026-11-20T10:01:00Z", "event": "Paid"}},
    ],
    "clevertap": [{"kind": "clevertap", "campaign_id": "c9",
                   "event": {"email": A, "clevertap_id": "__ct1", "data": {}}}],
    "mailmodo": [
        {"kind": "mailmodo", "event": {"event": "opened", "email": A, "timestamp": 1763633400}},
        {"kind": "mailmodo", "event": {"event": "form_submitted", "email": A,
                                       "timestamp": 1763633460, "template_name": "Survey",
                                       "form_responses": {"q": "yes"}}},
    ],
    "mailjet": [{"kind": "mailjet", "event": {"event": "open", "email": A, "time": 1763633500,
                                              "MessageID": 77}}],
}


def interleavings(streams: dict[str, list[Any]]) -> list[list[Any]]:
    """Every order of the topics one after another (the back-to-back replay of each)."""
    return [[step for name in names for step in streams[name]]
            for names in itertools.permutations(streams)]


def calls(steps: list[Any], cfg: RoutingConfig, now: float = 1.0e9) -> Counter:
    pipe = Pipeline(cfg, {})
    for step in steps:
        pipe.feed({**step, "now": now})
    return Counter((r.destination, r.op, r.key, r.id, json.dumps(r.payload, sort_keys=True))
                   for r in pipe.records)


CAUGHT_UP = STREAMS["segment"] + STREAMS["clevertap"] + STREAMS["mailmodo"] + STREAMS["mailjet"]


def test_every_topic_order_gives_the_calls_of_the_caught_up_order() -> None:
    cfg = RoutingConfig(hold_seconds=3600.0)
    want = calls(CAUGHT_UP, cfg)
    assert sum(want.values()) == 10  # 2 upserts, event, campaign, 3 CleverTap, 3 Segment
    for order in interleavings(STREAMS):
        assert calls(order, cfg) == want, [s["kind"] for s in order]


def test_without_holds_the_order_changes_the_calls() -> None:
    """The property above is not vacuous: with holds off (0) the reversed order loses calls."""
    cfg = RoutingConfig(hold_seconds=0.0)
    reversed_order = [s for name in reversed(list(STREAMS)) for s in STREAMS[name]]
    assert calls(reversed_order, cfg) != calls(CAUGHT_UP, cfg)


def test_expired_holds_are_decided_without_the_state() -> None:
    """A sweep past the hold time drops Mailmodo activity (not_identified, no_clevertap_id)
    and sends the Mailjet event with the email as anonymousId, as without holds."""
    cfg = RoutingConfig(hold_seconds=60.0)
    pipe = Pipeline(cfg, {})
    for step in STREAMS["mailmodo"] + STREAMS["mailjet"]:
        pipe.feed({**step, "now": 1000.0})
    assert pipe.records == [] and pipe.drops == []
    pipe.feed({"kind": "sweep_contact", "email_key": "ada@example.com", "now": 1030.0})
    assert pipe.records == []  # not yet expired
    pipe.feed({"kind": "sweep_contact", "email_key": "ada@example.com", "now": 1061.0})
    assert sorted(d.reason for d in pipe.drops) == [
        "no_clevertap_id", "no_clevertap_id", "not_identified", "not_identified"]
    [track] = pipe.records
    assert track.payload["message"]["anonymousId"] == A
    # and the contact holds nothing any more: a late identify sends nothing of them
    for step in STREAMS["segment"] + STREAMS["clevertap"]:
        pipe.feed({**step, "now": 1062.0})
    assert [r.destination for r in pipe.records[1:]] == ["mailmodo", "mailjet", "mailmodo",
                                                         "mailmodo"]


def test_a_full_hold_list_decides_its_oldest_entry() -> None:
    cfg = RoutingConfig(hold_seconds=60.0, max_pending=1)
    pipe = Pipeline(cfg, {})
    for step in STREAMS["mailmodo"]:
        pipe.feed({**step, "now": 1000.0})
    # the opened activity was pushed out: dropped for both destinations
    assert sorted(d.reason for d in pipe.drops) == ["no_clevertap_id", "not_identified"]


def test_a_copy_of_a_held_input_is_not_held_twice() -> None:
    """A replay or redelivery of an input that is held already adds nothing: once released,
    the one entry gives the calls (the copy would only repeat its delivery ids)."""
    cfg = RoutingConfig(hold_seconds=3600.0)
    pipe = Pipeline(cfg, {})
    track = STREAMS["segment"][1]
    for step in STREAMS["mailmodo"] + STREAMS["mailjet"] + [track]:
        pipe.feed({**step, "now": 1000.0})
    for step in STREAMS["mailmodo"] + STREAMS["mailjet"] + [track]:  # the replayed copies
        pipe.feed({**step, "now": 1001.0})
    assert pipe.holds["held"] == 1  # the users stage's count: the track, once
    assert len(json.loads(pipe.users["u1"])["pending"]) == 1
    assert len(json.loads(pipe.contacts["ada@example.com"])["pending"]) == 3
    for step in STREAMS["segment"][:1] + STREAMS["clevertap"]:
        pipe.feed({**step, "now": 1002.0})
    assert calls(CAUGHT_UP, cfg) == Counter(
        (r.destination, r.op, r.key, r.id, json.dumps(r.payload, sort_keys=True))
        for r in pipe.records)


def test_an_expired_hold_is_released_by_the_state_that_comes_for_it() -> None:
    """Catch-up after a gap longer than the hold time: the inputs held before the gap and the
    input bringing their state are processed together; the state is there, so they are
    released (the calls of the caught-up order), not dropped as expired."""
    cfg = RoutingConfig(hold_seconds=60.0)
    pipe = Pipeline(cfg, {})
    identify, track = STREAMS["segment"]
    for step in [track] + STREAMS["mailjet"]:  # both wait for the identify only
        pipe.feed({**step, "now": 1000.0})
    pipe.feed({**identify, "now": 8200.0})  # the backlog, 2 h later
    assert pipe.drops == [] and pipe.holds["hold_expired"] == 0
    assert pipe.holds["hold_released"] == 1
    assert [r.destination for r in pipe.records].count("segment") == 1  # the Mailjet open
    assert calls([identify, track] + STREAMS["mailjet"], cfg) == Counter(
        (r.destination, r.op, r.key, r.id, json.dumps(r.payload, sort_keys=True))
        for r in pipe.records)


def test_an_expired_part_still_waiting_is_decided_as_expired() -> None:
    """The identify releases the Segment parts of expired Mailmodo activity; their CleverTap
    parts, still without a CleverTap ID, are decided as expired (no_clevertap_id) then."""
    cfg = RoutingConfig(hold_seconds=60.0)
    pipe = Pipeline(cfg, {})
    for step in STREAMS["mailmodo"]:
        pipe.feed({**step, "now": 1000.0})
    pipe.feed({**STREAMS["segment"][0], "now": 8200.0})
    assert sorted(d.reason for d in pipe.drops) == ["no_clevertap_id", "no_clevertap_id"]
    assert sorted(r.destination for r in pipe.records) == [
        "mailjet", "mailmodo", "segment", "segment"]
    assert not json.loads(pipe.contacts["ada@example.com"]).get("pending")


def _track(user_id: str, message_id: str) -> dict[str, Any]:
    return {"kind": "segment", "event": {"type": "track", "userId": user_id, "event": "Paid",
                                         "messageId": message_id,
                                         "timestamp": "2026-11-20T10:01:00Z"}}


def test_a_merge_processed_twice_holds_its_tracks_once() -> None:
    """A MergeUser processed again (a batch retried after its outputs went out) adds none of
    the tracks it brought a second time."""
    from streamproc.core.routing.messages import MergeUser

    pipe = Pipeline(RoutingConfig(hold_seconds=3600.0), {})
    pipe.feed({**_track("u1", "t1"), "now": 1000.0})
    merge = MergeUser(user_id="u2", previous_id="u1", state=json.loads(pipe.users["u1"]),
                      timestamp=1.0, source_id="a1")
    pipe.by_user(merge, 1001.0, None)
    pipe.by_user(merge, 1002.0, None)
    assert [e["id"] for e in json.loads(pipe.users["u2"])["pending"]] == ["t1"]


def test_a_merge_past_max_pending_decides_the_oldest_as_overflow() -> None:
    """Tracks brought by an alias beyond cfg.max_pending are decided like any overflow: the
    oldest dropped unknown_user and counted, the newest max_pending kept."""
    pipe = Pipeline(RoutingConfig(hold_seconds=3600.0, max_pending=2), {})
    for n, (user_id, message_id) in enumerate([("u1", "t1"), ("u2", "t2"), ("u2", "t3")]):
        pipe.feed({**_track(user_id, message_id), "now": 1000.0 + n})
    pipe.feed({"kind": "segment", "now": 1010.0,
               "event": {"type": "alias", "userId": "u2", "previousId": "u1",
                         "messageId": "a1", "timestamp": "2026-11-20T10:02:00Z"}})
    assert [(d.destination, d.reason) for d in pipe.drops] == [("mailmodo", "unknown_user")]
    assert pipe.holds["hold_overflow"] == 1
    assert [e["id"] for e in json.loads(pipe.users["u2"])["pending"]] == ["t2", "t3"]
