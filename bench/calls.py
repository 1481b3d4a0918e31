"""CPU time per call of the worker's per-input functions, measured inside a bench worker
(bench/worker.py with BENCH_TIME_CALLS=<file prefix>): the routing functions (ingest_outputs,
user_outputs, contact_outputs), the outcome calls they make (ingest_outs, routing_outs) and the
outcome records of each agent batch (take_outcomes), with the garbage collector's time and the
process's user and system CPU. Written to <prefix>.<pid>.json when the worker exits (`final`)
and every 50 batches before that, read back by bench/routing.py --time-calls.

The clock (time.thread_time_ns, a system call here) is not free: a timed call costs about
0.9 µs more, of which about 0.3 µs falls inside the timed span. That share is measured at
start-up (`timer_ns`, an empty function timed the same way) and subtracted from every figure;
the rest slows both sides of an A/B alike, so the A/B's verdict is taken without timers."""

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
CALIBRATION_CALLS = 20_000


def _agents() -> Any:
    try:
        import streamproc.worker.agents as agents
    except ImportError:  # a checkout from before the package re-layout (A/B baselines)
        import streamproc.agents as agents  # type: ignore[no-redef]
    return agents


def install(prefix: str) -> Callable[[], None]:
    """Wrap the agents module's functions that it has (looked up by name at each call) and
    hook the GC; returns the function that writes the figures (also run at exit)."""
    agents = _agents()
    ns: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    clock = time.thread_time_ns
    path = Path(f"{prefix}.{os.getpid()}.json")

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args)
            finally:
                ns[name] += clock() - t0
                calls[name] += 1
                if name == "take_outcomes" and calls[name] % 50 == 0:
                    dump(final=False)
        return timed

    empty = wrap("", lambda: None)
    for _ in range(CALIBRATION_CALLS):
        empty()
    timer_ns = ns.pop("") / calls.pop("")
    wrapped = [name for name in WRAPPED if hasattr(agents, name)]

    def dump(final: bool = True) -> None:
        t = os.times()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ns": ns, "calls": calls, "timer_ns": timer_ns,
                                   "wrapped": wrapped, "final": final, "user_s": t.user,
                                   "system_s": t.system}))
        os.replace(tmp, path)  # never read half-written

    for name in wrapped:
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


def read(prefix: str, pid: int, inputs: int) -> dict[str, Any] | None:
    """A worker's figures (its file removed): µs of CPU per call and per input of each
    function, the clock's share (timer_ns) taken off; GC and process CPU seconds; `final`
    False when the worker did not write them at exit (the counts are then partial)."""
    path = Path(f"{prefix}.{pid}.json")
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    path.unlink()
    ns, calls, timer = doc["ns"], doc["calls"], doc["timer_ns"]
    own = {k: max(0.0, ns[k] - (timer * calls[k] if k != "gc" else 0)) for k in ns if calls[k]}
    return {"us_per_call": {k: round(v / 1e3 / calls[k], 2) for k, v in sorted(own.items())},
            "us_per_input": {k: round(v / 1e3 / inputs, 2) for k, v in sorted(own.items())},
            "calls": calls, "timer_us": round(timer / 1e3, 3), "wrapped": doc["wrapped"],
            "final": doc["final"], "gc_s": round(ns.get("gc", 0) / 1e9, 3),
            "user_s": doc["user_s"], "system_s": doc["system_s"]}
