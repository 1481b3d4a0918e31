"""Horizontal scale: the same load (N mixed events, bench/gen.py) through 1 worker, then through 2
workers of one consumer group (each on fresh topics). The workers start first and are ready with
a settled assignment before the load is produced at full speed, so no rebalance happens during
the measurement. events/s = N / (first internal record appended -> last sink record appended).

    python -m bench.scale [--events N] [--workers 1,2]

On a 2-core host that also runs the broker, 2 workers cannot double the rate: the CPU figures
(worker CPU-seconds per 1k inputs, the summed utilisation of the workers, and the cores the
broker and this process, which produces the load, used in the same window) show whether the
workers were short of CPU or of work."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from bench import gen
from bench.common import (
    Broker, CpuSampler, ProcCpu, Progress, Worker, Workdir, create_topics, env_int, log, new_prefix,
    produce, read_topics, write_result,
)


def wait_settled(workers: list[Worker], timeout: float = 180.0, stable_s: float = 3.0) -> float:
    """Every worker ready, and the readiness details (partitions assigned) unchanged for
    `stable_s`. Returns the seconds it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last: tuple | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        states = tuple(w.ready() for w in workers)
        for w in workers:
            w.check_alive()
        if all(ok for ok, _ in states):
            if states != last:
                last, since = states, time.monotonic()
            elif time.monotonic() - since >= stable_s:
                return time.monotonic() - t0
        else:
            last = None
        time.sleep(0.2)
    raise TimeoutError(f"workers not settled after {timeout:.0f}s: {last}")


def run_one(bootstrap: str, wd: Any, k: int, raws: list[gen.Raw], summary: dict,
            timeout: float, broker_pid: int | None = None) -> dict[str, Any]:
    prefix = new_prefix(f"x{k}")
    topo = create_topics(bootstrap, prefix)
    app_id = f"{prefix}app"
    workers = [Worker(bootstrap, prefix, app_id, name=f"w{i + 1}", root=wd).start()
               for i in range(k)]
    try:
        others = {"broker": CpuSampler([ProcCpu(broker_pid)] if broker_pid else []),
                  "bench_process": CpuSampler([ProcCpu(os.getpid())])}
        with CpuSampler(workers) as cpu, others["broker"], others["bench_process"]:
            settle_s = wait_settled(workers)
            assignment = [w.ready()[1] for w in workers]
            log(f"{k} worker(s) ready and settled after {settle_s:.1f}s ({assignment}); "
                f"producing {len(raws)} events ...")
            rate = produce(bootstrap, topo, raws)
            prog = Progress(bootstrap, topo, app_id, summary["sinks_min"], summary["sinks_max"],
                            workers).wait(timeout)
            rss = [w.rss_kb() for w in workers]
    finally:
        for w in workers:
            w.stop()
    internal = [topo.internal["by_user"].name, topo.internal["by_contact"].name]
    sinks = [d.sink.name for d in topo.destinations.values()]
    t0 = min((r.ts for r in read_topics(bootstrap, internal, with_values=False)), default=0) / 1000
    t1 = max((r.ts for r in read_topics(bootstrap, sinks, with_values=False)), default=0) / 1000
    secs = t1 - t0 if t0 and t1 > t0 else None
    n = len(raws)
    cpu_s = cpu.between(t0, t1) if secs else None
    res = {
        "workers": k, "assignment": assignment, "produce_rate": round(rate), **prog,
        "window_seconds": round(secs, 3) if secs else None,
        "events_per_s": round(n / secs, 1) if secs else None,
        "workers_cpu_s": cpu_s,
        "workers_cpu_s_per_1k_inputs": round(cpu_s / n * 1000, 4) if cpu_s else None,
        "workers_cpu_utilisation": round(cpu_s / secs, 2) if cpu_s and secs else None,
        "workers_rss_mb": [round(r / 1024, 1) if r else None for r in rss],
    }
    for name, sampler in others.items():  # the rest of the host in the same window
        used = sampler.between(t0, t1) if secs else None
        res[f"{name}_cpu_utilisation"] = round(used / secs, 2) if used and secs else None
    log(f"{k} worker(s): {res['events_per_s']} events/s; CPU {res['workers_cpu_utilisation']} "
        f"cores; {res['workers_cpu_s_per_1k_inputs']} cpu-s per 1k inputs; broker "
        f"{res['broker_cpu_utilisation']} and this process {res['bench_process_cpu_utilisation']}"
        " cores")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=env_int("BENCH_SCALE_EVENTS", 200_000))
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--name", default="scale")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    t = time.monotonic()
    raws = gen.mixed(args.events)
    summary = gen.summary(raws)
    runs = []
    with Broker() as broker, Workdir("scale") as wd:
        for k in counts:
            runs.append(run_one(broker.bootstrap, wd, k, raws, summary,
                                timeout=max(180.0, args.events / 300),
                                broker_pid=broker.pid()))
    doc: dict[str, Any] = {"sizes": {"events": args.events, "workers": counts},
                           "input": summary, "runs": runs}
    base = runs[0]["events_per_s"]
    if base:
        doc["speedup"] = {str(r["workers"]): round(r["events_per_s"] / base, 2)
                          for r in runs if r["events_per_s"]}
        log(f"speedup vs {counts[0]} worker(s): {doc['speedup']}")
    doc["took_s"] = round(time.monotonic() - t, 1)
    write_result(args.name, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
