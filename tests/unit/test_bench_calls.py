"""bench/calls.py (--time-calls of bench/routing.py): the worker's per-input functions are
wrapped where the agents look them up (a call from inside agents.py is timed too), the clock's
own share is measured and taken off, and the figures are read back per call and per input;
and bench.common.finished: a burst is done when every source record is committed."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import calls, route_path  # noqa: E402
from bench.common import finished  # noqa: E402


def test_calls_from_inside_the_agents_are_timed_and_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamproc.worker.agents as agents

    for name in calls.WRAPPED:  # restored after the test
        monkeypatch.setattr(agents, name, getattr(agents, name))
    rt = route_path.runtime("dict")
    before = list(gc.callbacks)
    dump = calls.install(str(tmp_path / "calls"))
    try:
        for i in range(3):
            m = route_path.Msg("segment.raw", b"u1", b'{"type": "track", "event": "E", '
                               b'"userId": "u1", "messageId": "m%d"}' % i, i)
            assert agents.ingest_outputs(rt, "segment", m)  # ingest_outs called inside
        gc.collect()
        dump(final=False)
    finally:
        atexit.unregister(dump)
        gc.callbacks[:] = before
    got = calls.read(str(tmp_path / "calls"), os.getpid(), 3)
    assert got is not None and not got["final"]
    assert got["calls"]["ingest_outputs"] == 3 and got["calls"]["ingest_outs"] == 3
    assert got["calls"]["gc"] >= 1 and "routing_outs" not in got["calls"]
    assert set(got["wrapped"]) == set(calls.WRAPPED)
    assert 0 < got["timer_us"] < 50
    assert got["us_per_input"]["ingest_outputs"] == pytest.approx(
        got["us_per_call"]["ingest_outputs"], abs=0.02)  # one call per input here
    assert got["us_per_input"]["ingest_outputs"] >= got["us_per_input"]["ingest_outs"]
    assert not list(tmp_path.iterdir())  # read once: the file is removed
    assert calls.read(str(tmp_path / "calls"), os.getpid(), 3) is None


def test_the_clocks_share_is_taken_off(tmp_path: Path) -> None:
    pid = 4242
    (tmp_path / f"c.{pid}.json").write_text(
        '{"ns": {"take_outcomes": 5000, "gc": 1000}, "calls": {"take_outcomes": 10, "gc": 2},'
        ' "timer_ns": 300, "wrapped": ["take_outcomes"], "final": true, "user_s": 1.0,'
        ' "system_s": 0.1}')
    got = calls.read(str(tmp_path / "c"), pid, 4)
    assert got["us_per_call"] == {"gc": 0.5, "take_outcomes": 0.2}  # (5000 - 10 x 300) / 10
    assert got["us_per_input"] == {"gc": 0.25, "take_outcomes": 0.5}
    assert got["final"] and got["gc_s"] == 0.0


def test_a_burst_is_done_only_when_every_source_record_is_committed() -> None:
    assert finished(0, 100, 100)
    assert not finished(5, 400, 100)  # more sink records than estimated, still routing
    assert not finished(0, 99, 100)
