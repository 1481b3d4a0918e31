"""The outcome code alone, in-process: the calls the routing path makes to it (ingest_outs,
routing_outs, take_outcomes) captured from a bench/route_path.py-style run of N generated
inputs, then replayed warm with the garbage collector off, best of five. This is the outcome
code's own cost per input, without the routing around it; the worker pays more (its working
set is larger: README, Benchmarks, Outcomes).

    python -m bench.outcome_calls [--events N]

prints µs per input for the `in` side and the route side, each without and with take()."""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any, Callable

from bench import route_path as rp

BATCH = 500


def capture(n: int) -> tuple[Any, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(runtime, ingest_outs calls, routing_outs calls) of a bench/route_path.py run of n
    generated inputs."""
    import streamproc.worker.agents as agents

    ins: list[tuple[Any, ...]] = []
    routes: list[tuple[Any, ...]] = []
    rts: list[Any] = []
    orig_in, orig_route = agents.ingest_outs, agents.routing_outs

    def ingest_outs(rt_: Any, *args: Any) -> Any:  # (..., batched): replayed batched
        ins.append(args[:-1])
        rts[:] = [rt_]
        return orig_in(rt_, *args)

    def routing_outs(rt_: Any, *args: Any) -> Any:
        routes.append(args[:-1])
        return orig_route(rt_, *args)

    agents.ingest_outs, agents.routing_outs = ingest_outs, routing_outs  # type: ignore[assignment]
    try:
        rp.run(n, "dict", False)
    finally:
        agents.ingest_outs, agents.routing_outs = orig_in, orig_route
    if not rts or rts[0].outcomes is None:
        raise SystemExit("outcomes are off (STREAMPROC_OUTCOMES)")
    return rts[0], ins, routes


def best_us(fn: Callable[[], None], n: int, reps: int = 5) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(best / n * 1e6, 2)


def main(argv: list[str] | None = None) -> int:
    import streamproc.worker.outcomes as oc

    ap = argparse.ArgumentParser(prog="python -m bench.outcome_calls", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args(argv)
    rt, ins, routes = capture(args.events)
    o = rt.outcomes

    def replay(calls: list[tuple[Any, ...]], call: Callable[..., Any], take: bool) -> None:
        for i in range(0, len(calls), BATCH):
            for c in calls[i:i + BATCH]:
                call(rt, *c, True)
            oc.take_outcomes(rt) if take else o.rollback()

    gc.disable()
    res = {
        "in": best_us(lambda: replay(ins, oc.ingest_outs, False), args.events),
        "in+take": best_us(lambda: replay(ins, oc.ingest_outs, True), args.events),
        "route": best_us(lambda: replay(routes, oc.routing_outs, False), args.events),
        "route+take": best_us(lambda: replay(routes, oc.routing_outs, True), args.events),
    }
    gc.enable()
    print(f"outcome code, µs per input ({args.events} inputs, {len(routes)} routing calls): "
          f"{res}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
