"""`python -m bench.worker`: exactly `python -m streamproc worker` (same settings, same app, same
agents), with benchmark switches read from non-STREAMPROC variables:

- BENCH_DELIVERY=off (the default here): the delivery agents are not registered, so the worker
  does ingest -> repartition -> state + routing -> sink topics and nothing else. (Switching the
  destinations off in topics.yaml would not do: routing then drops everything as `disabled`.)
- BENCH_PROFILE=<file>: run the worker under cProfile and write the stats to <file> on exit
  (read them with `python -m bench.profile_report <file>`).
- BENCH_STREAMPROC_SRC=<dir>: import streamproc from <dir>/streamproc instead (e.g. a copy at
  another commit, for before/after figures on the same broker and load).
- BENCH_TIME_CALLS=<file prefix>: time the per-input functions (bench/calls.py, written to
  <prefix>.<pid>.json; bench/routing.py --time-calls).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    src = os.environ.get("BENCH_STREAMPROC_SRC")
    if src:  # another copy of the streamproc package (before/after comparisons)
        sys.path.insert(0, src)
    if os.environ.get("BENCH_DELIVERY", "off") == "off":
        try:
            import streamproc.worker.deliver_agents as deliver_agents
        except ImportError:  # a checkout from before the package re-layout (A/B baselines)
            import streamproc.deliver_agents as deliver_agents  # type: ignore[no-redef]

        deliver_agents.register_delivery = lambda rt, topic: None  # type: ignore[assignment]

    import streamproc
    from streamproc.__main__ import main as streamproc_main

    if os.environ.get("BENCH_TIME_CALLS"):  # CPU time per call of the per-input functions
        from bench import calls

        calls.install(os.environ["BENCH_TIME_CALLS"])

    print(f"bench.worker: streamproc from {os.path.dirname(streamproc.__file__)}, delivery "
          f"{os.environ.get('BENCH_DELIVERY', 'off')}", file=sys.stderr, flush=True)

    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        return streamproc_main(["worker"])
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        return streamproc_main(["worker"])
    finally:
        prof.disable()
        prof.dump_stats(profile_to)


if __name__ == "__main__":
    sys.exit(main())
