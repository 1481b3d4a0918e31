"""MappingLedger over plain mappings: retention window, value types, bounded purge."""

from __future__ import annotations

import pytest

from streamproc.delivery.ledger import InMemoryLedger, MappingLedger, as_unix_seconds


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_seen_within_retention_only():
    clock = Clock(1_000_000.0)
    ledger = InMemoryLedger(retention_s=3600, clock=clock)
    assert not ledger.seen("a")
    ledger.mark(["a", "b"], at=clock.now)
    assert ledger.seen("a") and ledger.seen("b") and not ledger.seen("c")
    clock.now += 3599
    assert ledger.seen("a")
    clock.now += 1
    assert not ledger.seen("a")


def test_works_over_any_mapping_with_bytes_or_float_values():
    store = {"f": 1000.0, "i": 1000, "b": b"1000.5", "s": "1000", "junk": b"\xff\x00", "t": True}
    ledger = MappingLedger(store, retention_s=10, clock=lambda: 1005.0)
    assert all(ledger.seen(k) for k in ("f", "i", "b", "s"))
    assert not ledger.seen("junk") and not ledger.seen("t")
    assert as_unix_seconds(b"12.5") == 12.5 and as_unix_seconds(object()) is None


def test_seen_many_answers_like_seen_for_a_whole_batch():
    store = {"f": 1000.0, "b": b"1000.5", "old": 900.0, "junk": b"\xff\x00"}
    ledger = MappingLedger(store, retention_s=10, clock=lambda: 1005.0)
    ids = ["f", "b", "old", "junk", "absent"]
    assert ledger.seen_many(ids) == {i for i in ids if ledger.seen(i)} == {"f", "b"}


def test_purge_drops_only_expired_keys_in_bounded_chunks():
    store = {f"old{i}": 100.0 for i in range(25)}
    store.update({f"new{i}": 990.0 for i in range(5)})
    store["junk"] = b"not a number"
    ledger = MappingLedger(store, retention_s=50, clock=lambda: 1000.0)
    assert ledger.purge(chunk=4, max_chunks=3) == 12  # bounded: 3 scans of 4
    assert len(store) == 31 - 12
    assert ledger.purge(chunk=4) == 14  # the rest of the old ones and the junk
    assert sorted(store) == [f"new{i}" for i in range(5)]
    assert ledger.purge(now=2000.0) == 5 and store == {}


def test_retention_must_be_positive():
    with pytest.raises(ValueError):
        MappingLedger({}, retention_s=0)
