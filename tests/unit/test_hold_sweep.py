"""The worker side of holds: the sweeper's index (noted by the agents, rebuilt by a bounded scan
of the stores after they changed), which keys are due, and the status page's holds view."""

from __future__ import annotations

import orjson

from streamproc.core.metrics import Metrics
from streamproc.http.status import holds_view
from streamproc.worker.holds_sweep import HoldIndex


class FakeStore:
    """Sorted bytes keys, iterated like rocksdict's Rdict.items(from_key=...)."""

    def __init__(self, values: dict[bytes, bytes]) -> None:
        self.values = dict(sorted(values.items()))

    def items(self, from_key: bytes | None = None):
        return ((k, v) for k, v in self.values.items() if from_key is None or k >= from_key)


def contact(pending: list[dict]) -> bytes:
    doc = {"email": "a@example.com", "identified": False}
    if pending:
        doc["pending"] = pending
    return orjson.dumps(doc)


HELD = {"held_at": 100.0, "kind": "mailmodo", "event": {}, "source": {},
        "waits": ["not_identified", "no_clevertap_id"]}


def test_the_index_is_rebuilt_by_a_bounded_scan_when_the_stores_change() -> None:
    values = {f"k{i:03d}".encode(): contact([HELD] if i % 10 == 0 else []) for i in range(50)}
    values[b"__faust\x00offset__"] = b"12"
    store = FakeStore(values)
    idx = HoldIndex()
    idx.rescan_if_moved("contacts", [store])
    idx.scan_step("contacts", budget=20)
    assert len(idx.keys["contacts"]) < 5  # bounded: not everything read in one step
    for _ in range(5):
        idx.scan_step("contacts", budget=20)
    assert sorted(idx.keys["contacts"]) == [f"k{i:03d}" for i in range(0, 50, 10)]
    assert idx.held_now() == {("mailmodo", "not_identified"): 5,
                              ("mailmodo", "no_clevertap_id"): 5}
    idx.rescan_if_moved("contacts", [store])  # same stores: nothing to do
    assert idx.scans["contacts"] == []


def test_due_keys_are_those_past_the_hold_time_and_not_sent_twice() -> None:
    idx = HoldIndex()
    idx.note("users", "u1", [{"held_at": 100.0, "event": {}}])
    idx.note("users", "u2", [{"held_at": 150.0, "event": {}}])
    assert idx.due("users", now=161.0, hold_s=60.0) == ["u1"]
    assert idx.due("users", now=162.0, hold_s=60.0) == []  # swept already: wait for its agent
    idx.note("users", "u1", [])  # its agent decided the holds
    assert list(idx.keys["users"]) == ["u2"]
    assert idx.held_now() == {("segment", "unknown_user"): 1}


def test_the_status_holds_view_by_source_and_reason() -> None:
    m = Metrics()
    m.tracks_held.labels("mailmodo", "not_identified").inc(3)
    m.holds_released.labels("mailmodo", "not_identified").inc(2)
    m.holds_dropped.labels("expired", "mailmodo", "not_identified").inc(1)
    m.held_now.labels("segment", "unknown_user").set(4)
    view = holds_view(m.snapshot())
    assert view["mailmodo/not_identified"] == {"held_now": 0, "held": 3, "released": 2,
                                               "expired": 1, "overflow": 0}
    assert view["segment/unknown_user"]["held_now"] == 4
    assert set(view) == {"segment/unknown_user", "mailmodo/not_identified",
                         "mailmodo/no_clevertap_id", "mailjet/not_identified"}


def test_the_demo_summary_lists_what_is_held_now() -> None:
    from streamproc.dev.demo import format_summary, held_now, summary

    m = Metrics()
    m.tracks_held.labels("segment", "unknown_user").inc(2)
    m.holds_released.labels("segment", "unknown_user").inc(1)
    m.tracks_held.labels("mailjet", "not_identified").inc(1)
    m.holds_dropped.labels("expired", "mailjet", "not_identified").inc(1)
    metrics: dict = {}
    for name, samples in m.snapshot().items():  # as scraped: full names, sorted label pairs
        labels = {"tracks_held": ("source", "waits_for"), "holds_released": ("source", "waits_for"),
                  "holds_dropped": ("reason", "source", "waits_for")}.get(name)
        if labels:
            metrics[f"streamproc_{name}_total"] = {
                tuple(sorted(zip(labels, k))): v for k, v in samples.items()}
    assert held_now(metrics) == {"segment/unknown_user": 1}
    text = format_summary(summary(metrics), 0, held_now(metrics))
    assert text.endswith("STREAMPROC_HOLD_SECONDS): segment/unknown_user: 1")
