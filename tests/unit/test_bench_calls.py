"""bench/calls.py (--time-calls of bench/routing.py): the worker's per-input functions are
wrapped where the agents look them up, their CPU time per call and the collector's are written,
and read back per input."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import calls  # noqa: E402


def test_the_wrapped_functions_are_timed_and_read_back(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import streamproc.worker.agents as agents

    seen: list[Any] = []
    for name in calls.WRAPPED:  # stand-ins, restored by monkeypatch
        monkeypatch.setattr(agents, name, lambda *a, _n=name: seen.append((_n, a)) or [])
    before = list(gc.callbacks)
    dump = calls.install(str(tmp_path / "calls"))
    try:
        for i in range(3):
            agents.ingest_outs("rt", i)
        agents.routing_outs("rt", "users")
        gc.collect()
        dump()
    finally:
        atexit.unregister(dump)
        gc.callbacks[:] = before
    assert seen[:3] == [("ingest_outs", ("rt", 0)), ("ingest_outs", ("rt", 1)),
                        ("ingest_outs", ("rt", 2))]  # the real functions still run
    got = calls.read(str(tmp_path / "calls"), os.getpid())
    assert got is not None
    assert got["calls"]["ingest_outs"] == 3 and got["calls"]["routing_outs"] == 1
    assert got["calls"]["gc"] >= 1 and got["gc_s"] >= 0
    assert set(got["us_per_call"]) >= {"ingest_outs", "routing_outs", "gc"}
    assert got["user_s"] > 0
    assert calls.read(str(tmp_path / "none"), os.getpid()) is None
