"""CPU time per call of the worker's per-input functions, measured inside a bench worker
(bench/worker.py with BENCH_TIME_CALLS=<file prefix>): the routing functions (ingest_outputs,
user_outputs, contact_outputs), the outcome calls they make (ingest_outs, routing_outs) and the
outcome records of each agent batch (take_outcomes), with the garbage collector's time and the
process's user and system CPU. Written to <prefix>.<pid>.json when the worker exits (and every
50 batches before that), read back by bench/routing.py --time-calls.

Each wrapped call costs about 0.3 µs more (two clock reads), on both sides of an A/B alike: the
figures are for where the time goes, not for the A/B's verdict, which is taken without them."""

from __future__ import annotations

import atexit
import gc
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

WRAPPED = ("ingest_outputs", "user_outputs", "contact_outputs", "ingest_outs", "routing_outs",
           "take_outcomes")


def install(prefix: str) -> Callable[[], None]:
    """Wrap the agents module's functions (looked up by name at each call) and hook the GC;
    returns the function that writes the figures (also run at exit)."""
    import streamproc.worker.agents as agents

    ns: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    clock = time.thread_time_ns
    path = Path(f"{prefix}.{os.getpid()}.json")

    def dump() -> None:
        t = os.times()
        path.write_text(json.dumps({"ns": ns, "calls": calls, "user_s": t.user,
                                    "system_s": t.system}))

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args)
            finally:
                ns[name] += clock() - t0
                calls[name] += 1
                if name == "take_outcomes" and calls[name] % 50 == 0:
                    dump()
        return timed

    for name in WRAPPED:
        setattr(agents, name, wrap(name, getattr(agents, name)))
    started = [0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            ns["gc"] += clock() - started[0]
            calls["gc"] += 1

    gc.callbacks.append(on_gc)
    atexit.register(dump)
    return dump


def read(prefix: str, pid: int) -> dict[str, Any] | None:
    """A worker's figures: µs per call and calls per function, GC and process CPU seconds."""
    path = Path(f"{prefix}.{pid}.json")
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    ns, calls = doc["ns"], doc["calls"]
    return {"us_per_call": {k: round(ns[k] / 1e3 / calls[k], 2) for k in sorted(ns) if calls[k]},
            "calls": calls, "gc_s": round(ns.get("gc", 0) / 1e9, 3),
            "user_s": doc["user_s"], "system_s": doc["system_s"]}
