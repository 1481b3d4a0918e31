"""BatchContext keeps a key's decoded state for the next event of the batch (issue 18), under
one invariant: a kept object is only ever the decoding of the key's current bytes. So a batch
routes exactly as the same events one by one, and an event that changes nothing or crashes
half-way leaves no in-place change behind."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace
from typing import Any

import pytest

from streamproc.core.events.segment import parse_segment
from streamproc.core.metrics import Metrics
from streamproc.core.records import DESTINATIONS
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.messages import encode, key_for
from streamproc.core.state.model import KnownUser
from streamproc.worker.agents import BatchContext, user_outputs

NOW = 1_714_557_600.0


def _rt() -> Any:
    names = {k: SimpleNamespace(name=f"t.{k}") for k in ("by_user", "by_contact", "dead_letter")}
    return SimpleNamespace(
        metrics=Metrics(), table_writers={}, outcomes=None, hold_index=None,
        tables={"users": {}},
        topology=SimpleNamespace(internal=names, destinations={
            d: SimpleNamespace(sink=SimpleNamespace(name=f"t.sink.{d}")) for d in DESTINATIONS}))


def _segment(i: int, rng: random.Random) -> Any:
    user = f"u{rng.randrange(3)}"
    if rng.random() < 0.4:
        doc = {"type": "identify", "userId": user,
               "traits": {"email": f"{user}.{rng.randrange(2)}@x.io", "plan": rng.randrange(3)}}
    else:
        doc = {"type": "track", "userId": user, "event": "Clicked", "properties": {"n": i}}
    doc.update(messageId=f"m{i}", timestamp=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z")
    return parse_segment(json.dumps(doc).encode())


def _msg(ev: Any, offset: int) -> Any:
    return SimpleNamespace(key=key_for(ev).encode(), value=encode(ev), topic="t.by_user",
                           partition=0, offset=offset)


@pytest.mark.parametrize("seed", range(5))
def test_a_batch_routes_as_its_events_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    events = [_segment(i, rng) for i in range(60)]
    cfg = RoutingConfig(hold_seconds=60.0)
    one_by_one, batched = _rt(), _rt()
    out_single = [o for i, ev in enumerate(events)
                  for o in user_outputs(one_by_one, cfg, _msg(ev, i), NOW)]
    batch = BatchContext(batched, direct=False)
    out_batch = [o for i, ev in enumerate(events)
                 for o in user_outputs(batched, cfg, _msg(ev, i), NOW, batch)]
    batch.flush()
    assert out_batch == out_single
    assert batched.tables["users"] == one_by_one.tables["users"]


def test_a_key_is_decoded_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    rng = random.Random(1)
    events = [_segment(i, rng) for i in range(40)]
    for i, ev in enumerate(events[:5]):  # the users exist before the batch
        user_outputs(rt, cfg, _msg(ev, i), NOW)
    decoded: list[str] = []
    real = KnownUser.from_dict.__func__

    def counting(cls: type, d: dict[str, Any]) -> KnownUser:
        decoded.append(d["user_id"])
        return real(cls, d)

    monkeypatch.setattr(KnownUser, "from_dict", classmethod(counting))
    batch = BatchContext(rt, direct=False)
    for i, ev in enumerate(events[5:]):
        user_outputs(rt, cfg, _msg(ev, 5 + i), NOW, batch)
    batch.flush()
    assert sorted(decoded) == sorted(set(decoded))  # each key at most once
    assert len(decoded) <= 3


def test_a_change_not_written_back_is_not_seen_by_the_next_event() -> None:
    rt = _rt()
    rt.tables["users"]["u1"] = KnownUser(user_id="u1", emails=["a@x.io"]).dumps()
    batch = BatchContext(rt, direct=False)
    user = batch.load("users", "u1", KnownUser)
    batch.set("users", "u1", user.dumps(), user)  # written back: kept for the next event
    again = batch.load("users", "u1", KnownUser)
    assert again is user
    again.emails.append("b@x.io")  # an event that crashes or changes nothing: no set()
    third = batch.load("users", "u1", KnownUser)
    assert third is not again and third.emails == ["a@x.io"]



def test_the_hold_index_keeps_its_own_copy_of_a_pending_list() -> None:
    """The batch keeps the state object for the key's next event, which may append to its
    pending list in place before it writes (or crashes): the index must not see that."""
    rt, cfg = _rt(), RoutingConfig(hold_seconds=60.0)
    track = parse_segment(json.dumps({"type": "track", "userId": "u9", "event": "E",
                                      "messageId": "t1", "timestamp": 1714557600}).encode())
    batch = BatchContext(rt, direct=False)
    user_outputs(rt, cfg, _msg(track, 0), NOW, batch)  # held: the user has no email yet
    kept = batch.objs[("users", "u9")]
    noted = rt.hold_index.keys["users"]["u9"][1]
    assert len(kept.pending) == 1 and noted == kept.pending
    assert noted is not kept.pending
