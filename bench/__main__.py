"""Run every benchmark, one after the other, on one local broker (or the cluster named by
STREAMPROC_BENCH_BOOTSTRAP_SERVERS). Each prints its figures and writes bench/results/<name>.json.

    python -m bench                      # full sizes (the issue's numbers; ~30-60 min)
    python -m bench --small              # smoke sizes (a few minutes)
    python -m bench --only routing,state # a subset

Full sizes: routing 200k events + 2k/s x 30 s steady; holds 100k events in three runs (holds on
state first, reversed, holds off); state 1M contacts; scale 200k events with 1 and 2 workers;
route_path 100k events in-process; delivery (bench/delivery.py) 100k records per destination. Sizes can also be set per benchmark with BENCH_* variables (see each module)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

from bench.common import BROKER_PID_ENV, Broker, log

ORDER = ("route_path", "routing", "holds", "state", "scale", "delivery")
SMALL = {
    "route_path": ["--events", "20000"],
    "routing": ["--events", "20000", "--rate", "2000", "--seconds", "10"],
    "holds": ["--events", "20000"],
    "state": ["--contacts", "20000"],
    "scale": ["--events", "20000"],
    "delivery": ["--records", "2000", "--trickle", "100"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="smoke sizes")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(ORDER)}")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(ORDER)
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed = []
    t = time.monotonic()
    with Broker() as broker:
        os.environ["STREAMPROC_BENCH_BOOTSTRAP_SERVERS"] = broker.bootstrap
        if broker.pid():  # so the benchmarks can sample the broker's CPU too
            os.environ[BROKER_PID_ENV] = str(broker.pid())
        for name in names:
            try:
                module = importlib.import_module(f"bench.{name}")
            except ImportError as e:
                log(f"== {name}: not available ({e})")
                continue
            bench_args = SMALL[name] if args.small else []
            log(f"== {name} {' '.join(bench_args)}")
            try:
                rc = module.main(bench_args)
            except Exception:  # noqa: BLE001 - report it, run the others
                traceback.print_exc()
                rc = 1
            if rc:
                failed.append(name)
    log(f"all benchmarks done in {time.monotonic() - t:.0f}s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
