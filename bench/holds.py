"""The cost of holding (issue 20), measured fairly: the same worker, settings and generated records
(bench/gen.py), produced in two topic orders on one broker, each run in topics and an app id of
its own. With holds on, the sink records do not depend on the order (tests/integration/
test_same_calls.py), so the runs do the same routing work and differ only in what is held:

  A  holds on, state first: segment, then clevertap, then mailmodo + mailjet; the worker caught
     up between phases, so (almost) nothing is held;
  B  holds on, reversed: mailmodo + mailjet, then clevertap, then segment; caught up between
     phases, so every Mailmodo and Mailjet input that depends on an identify or a CleverTap ID
     is held, then released when that state arrives;
  C  holds off (STREAMPROC_HOLD_SECONDS=0), state first: A without holding. Optional
     (--runs A,B). A - C is the per-input checks plus the inputs A holds that C drops at once
     (the ones whose state never comes: held for the whole hold time, so never released here).

    python -m bench.holds [--events N] [--name NAME] [--runs A,B,C,B,A] [--py-spy DIR]
    python -m bench.holds --in-process [--events N] [--repeat 3]

Caught up = the project's rule (streamproc/ops/caught_up.py run_rounds: committed offsets read
before end offsets, in rounds) over the topics the bench worker reads (raw, by_user,
by_contact; the bench worker has no delivery agents, so not the sinks), with a bounded timeout.
A phase's processing window runs from its first internal (repartition) record to its last
internal or sink record, broker append times (bench.common topics use LogAppendTime), so the
caught-up polling is not counted; CPU-seconds of the worker over those windows from /proc.

Figures per run: inputs, worker CPU-s per 1k inputs, inputs/s over the windows, sink records
per destination, held / released / expired / overflow (the worker's /metrics), table writes
= records on the known-users and contacts changelogs (one per changed key per batch: each is a
RocksDB put and a changelog record). Every run's sink records (destination, delivery id) are
compared with the first holds-on run's: a difference is printed loudly and recorded; between
A and B (holds on) it also makes the exit status 1. Runs may repeat (--runs A,B,B,A): the
figures below then use the means of the repeats. Then:
  holding cost = (B - A) / A of CPU per input (and of inputs/s);
  changelog records per held record = (changelog B - changelog A) / (held B - held A), which
  the issue bounds at 1 (a held record adds at most one table write and one changelog record);
  check cost = (A - C) / C of CPU per input (see C).

--in-process: the same runs through streamproc's own per-record code without Kafka or faust
(bench/route_path.py: ingest -> users -> contacts in batches of 500, each batch through every
stage before the next, which is "caught up"; thread CPU time, the worker's GC settings), each
run --repeat times, alternating: the medians, far less disturbed by a busy host. It measures
streamproc's Python only (no produce, fetch or commit), so its relative cost is an upper bound
of the worker's."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any, Iterable

from bench import gen
from bench.common import (
    Broker, CpuSampler, Worker, Workdir, _end_offsets, _group_offsets, create_topics, env_int,
    log, metric_values, new_prefix, produce, read_topics, write_result,
)
from bench.routing import changelog_records, sink_ref, worker_counts

STATE_FIRST = (("segment",), ("clevertap",), ("mailmodo", "mailjet"))
RUNS = {  # name -> (phases, worker environment)
    "A": (STATE_FIRST, {"STREAMPROC_HOLD_SECONDS": "3600"}),
    "B": (tuple(reversed(STATE_FIRST)), {"STREAMPROC_HOLD_SECONDS": "3600"}),
    "C": (STATE_FIRST, {"STREAMPROC_HOLD_SECONDS": "0"}),
}
HOLD_METRICS = {"held": ("streamproc_tracks_held_total", None),
                "released": ("streamproc_holds_released_total", None),
                "expired": ("streamproc_holds_dropped_total", 'reason="expired"'),
                "overflow": ("streamproc_holds_dropped_total", 'reason="overflow"')}


# ------------------------------------------------------------------ pure parts (unit-tested)


def phase_records(raws: list[gen.Raw], inputs: Iterable[str]) -> list[gen.Raw]:
    """The records of some inputs, in corpus order (each topic's own order is kept)."""
    want = set(inputs)
    return [r for r in raws if r.input in want]


def windows(append_ts: list[float], bounds: list[tuple[float, float]]
            ) -> list[tuple[float, float] | None]:
    """Per phase (its wall-clock [start, caught up]), the processing window: the first and the
    last output append time inside it (None: the phase produced no output)."""
    out: list[tuple[float, float] | None] = []
    for t0, t1 in bounds:
        inside = [t for t in append_ts if t0 <= t <= t1]
        out.append((min(inside), max(inside)) if inside else None)
    return out


def hold_counts(text: str) -> dict[str, int]:
    """held / released / expired / overflow, summed over sources and reasons, from /metrics."""
    out = {}
    for key, (name, label) in HOLD_METRICS.items():
        values = metric_values(text, name)
        out[key] = int(sum(v for k, v in values.items() if label is None or label in k))
    return out


def by_label(text: str, name: str) -> dict[str, int]:
    """A counter's non-zero series, by label string."""
    return {k: int(v) for k, v in sorted(metric_values(text, name).items()) if v}


def sink_diff(a: Counter, b: Counter, limit: int = 5) -> dict[str, Any]:
    """What one run's sink records (Counter of (destination, delivery id)) have that the
    other's have not, both ways; empty = the same multiset."""
    only_a, only_b = a - b, b - a
    if not only_a and not only_b:
        return {}
    return {"only_first": sum(only_a.values()), "only_second": sum(only_b.values()),
            "examples_first": [list(k) for k in list(only_a)[:limit]],
            "examples_second": [list(k) for k in list(only_b)[:limit]]}


def rel(new: float | None, base: float | None) -> float | None:
    """(new - base) / base, rounded; None when either is missing."""
    return round((new - base) / base, 4) if new is not None and base else None


def mean_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures compare() reads, averaged over repeats of one run."""
    def avg(get: Any) -> float | None:
        vals = [get(r) for r in runs]
        return None if any(v is None for v in vals) else sum(vals) / len(vals)

    return {"worker_cpu_s_per_1k_inputs": avg(lambda r: r["worker_cpu_s_per_1k_inputs"]),
            "events_per_s": avg(lambda r: r["events_per_s"]),
            "held": avg(lambda r: r["holds"]["held"]),
            "table_writes": avg(lambda r: sum(r["table_writes"].values())), "repeats": len(runs)}


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures between the runs (repeats "A2", "B2" ... averaged with "A", "B"): holding
    cost (B vs A), check cost (A vs C), changelog records per extra held record."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for key, r in runs.items():
        groups.setdefault(key[0], []).append(r)
    m = {k: mean_run(v) for k, v in groups.items()}
    out: dict[str, Any] = {"means": {k: {f: round(x, 4) if isinstance(x, float) else x
                                         for f, x in v.items()} for k, v in m.items()}}
    a, b, c = m.get("A"), m.get("B"), m.get("C")
    if a and b:
        extra_held = b["held"] - a["held"]
        extra_cl = b["table_writes"] - a["table_writes"]
        out["holding_cost_cpu"] = rel(b["worker_cpu_s_per_1k_inputs"],
                                      a["worker_cpu_s_per_1k_inputs"])
        out["holding_cost_inputs_per_s"] = rel(b["events_per_s"], a["events_per_s"])
        out["extra_held"] = round(extra_held, 1)
        out["extra_changelog_records"] = round(extra_cl, 1)
        out["changelog_records_per_held"] = round(extra_cl / extra_held, 4) if extra_held else None
        out["changelog_per_held_within_1"] = (out["changelog_records_per_held"] is not None
                                              and out["changelog_records_per_held"] <= 1)
        out["holding_cost_within_10pct"] = (out["holding_cost_cpu"] is not None
                                            and out["holding_cost_cpu"] < 0.10)
    if a and c:
        out["check_cost_cpu"] = rel(a["worker_cpu_s_per_1k_inputs"],
                                    c["worker_cpu_s_per_1k_inputs"])
        out["check_cost_inputs_per_s"] = rel(a["events_per_s"], c["events_per_s"])
    return out


def run_keys(names: list[str]) -> list[str]:
    """Result keys of the runs in order: A, B, C, then A2, B2 ... for repeats."""
    seen: Counter = Counter()
    keys = []
    for name in names:
        seen[name] += 1
        keys.append(name if seen[name] == 1 else f"{name}{seen[name]}")
    return keys


# ------------------------------------------------------------------ one run


def caught_up(bootstrap: str, group: str, topics: list[str], timeout: float) -> float:
    """Wait until the group has committed every partition of `topics` up to its end (the
    project's rounds, streamproc/ops/caught_up.py); seconds waited. Raises on the timeout."""
    from streamproc.ops.caught_up import run_rounds

    async def committed() -> dict[tuple[str, int], int]:
        got = await _group_offsets(bootstrap, group)
        return {tp: off for tp, off in got.items() if tp[0] in topics}

    res = asyncio.run(run_rounds(committed, lambda: _end_offsets(bootstrap, topics),
                                 timeout=timeout, interval=0.2))
    if not res.caught_up:
        raise TimeoutError(f"not caught up within {timeout:.0f}s: {res.summary()}")
    return res.seconds


def py_spy(pid: int, path: str) -> subprocess.Popen:
    return subprocess.Popen(["py-spy", "record", "-p", str(pid), "-f", "raw", "-o", path,
                             "-r", "200", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(name: str, bootstrap: str, wd: Any, raws: list[gen.Raw], timeout: float,
        spy_dir: str | None) -> dict[str, Any]:
    phases, env = RUNS[name]
    prefix = new_prefix(f"h{name.lower()}")
    topo = create_topics(bootstrap, prefix)
    app_id = f"{prefix}app"
    sources = [t.name for t in topo.inputs.values()] + [
        topo.internal["by_user"].name, topo.internal["by_contact"].name]
    log(f"run {name}: phases {' -> '.join('+'.join(p) for p in phases)}, {env}")
    w = Worker(bootstrap, prefix, app_id, name=f"w{name}", root=wd, extra_env=env).start()
    spy = None
    bounds: list[tuple[float, float]] = []
    with CpuSampler([w], interval=0.1) as cpu:
        ready_s = w.wait_ready()
        if spy_dir:
            spy = py_spy(w.pid, os.path.join(spy_dir, f"holds-{name}.txt"))
            time.sleep(1.0)  # py-spy attached
        for inputs in phases:
            recs = phase_records(raws, inputs)
            t0 = time.time()
            produce(bootstrap, topo, recs)
            waited = caught_up(bootstrap, app_id, sources, timeout)
            bounds.append((t0, time.time()))
            log(f"  {'+'.join(inputs)}: {len(recs)} records, caught up {waited:.1f}s after "
                f"producing")
        text = w.metrics()
        counts = worker_counts(w)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    w.stop()
    outputs = [topo.internal["by_user"].name, topo.internal["by_contact"].name]
    sinks = {d.sink.name: slug for slug, d in topo.destinations.items()}
    ts = [r.ts / 1000 for r in read_topics(bootstrap, outputs, with_values=False)]
    sink_recs = read_topics(bootstrap, list(sinks))
    ts += [r.ts / 1000 for r in sink_recs]
    wins = windows(ts, bounds)
    secs = sum(t1 - t0 for t0, t1 in filter(None, wins))
    worker_cpu = sum(cpu.between(t0, t1) or 0.0 for t0, t1 in filter(None, wins))
    ids = Counter(sink_ref(r.value)[1:] for r in sink_recs)
    n = len(raws)
    res = {
        "run": name, "phases": ["+".join(p) for p in phases], "env": env, "inputs": n,
        "ready_s": round(ready_s, 2),
        "phase_windows_s": [round(x[1] - x[0], 3) if x else None for x in wins],
        "window_s": round(secs, 3),
        "events_per_s": round(n / secs, 1) if secs else None,
        "worker_cpu_s": round(worker_cpu, 3),
        "worker_cpu_s_per_1k_inputs": round(worker_cpu / n * 1000, 4),
        "sink_records": len(sink_recs),
        "sink_records_per_destination": dict(sorted(Counter(d for d, _ in ids.elements()).items())),
        "duplicate_delivery_ids": len(sink_recs) - len(ids),
        "holds": hold_counts(text), "worker_metrics": counts,
        "holds_by_label": {k: by_label(text, name) for k, (name, _) in HOLD_METRICS.items()
                           if k != "overflow"},
        "dropped_by_label": by_label(text, "streamproc_dropped_total"),
        "table_writes": changelog_records(bootstrap, app_id),
    }
    log(f"  run {name}: {res['events_per_s']} inputs/s over {res['window_s']}s, "
        f"cpu {res['worker_cpu_s_per_1k_inputs']} s per 1k inputs; sinks "
        f"{res['sink_records_per_destination']}; holds {res['holds']}; "
        f"changelog {res['table_writes']}")
    return {**res, "_ids": ids}


def in_process(raws: list[gen.Raw], names: list[str], repeat: int) -> dict[str, Any]:
    """Each run `repeat` times through bench/route_path.py, alternating; median CPU per input."""
    from bench import route_path
    from streamproc.config.settings import Settings
    from streamproc.worker import gc_tuning

    threshold = Settings().gc_threshold
    gc_tuning.configure(threshold)
    gc_tuning.freeze_startup_heap(threshold)
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(repeat):
        for name in names:
            phases, env = RUNS[name]
            recs = [r for p in phases for r in phase_records(raws, p)]
            got[name].append(route_path.run(len(recs), "dict", False, cpu=True, raws=recs,
                                            hold_seconds=float(env["STREAMPROC_HOLD_SECONDS"])))
    out: dict[str, Any] = {}
    for name, results in got.items():
        totals = sorted(r["us_per_input"]["total"] for r in results)
        out[name] = {"us_per_input_median": totals[len(totals) // 2], "us_per_input": totals,
                     "stages_last": results[-1]["us_per_input"],
                     "outputs": results[-1]["sink_records"]}
    a, b, c = (out.get(k, {}).get("us_per_input_median") for k in "ABC")
    out["holding_cost_cpu"] = rel(b, a)
    out["check_cost_cpu"] = rel(a, c)
    log(f"in-process: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.holds", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=env_int("BENCH_EVENTS", 100_000))
    ap.add_argument("--name", default="holds")
    ap.add_argument("--runs", default="A,B,C",
                    help="which runs, in this order (A, B, C; repeats allowed: A,B,B,A,C)")
    ap.add_argument("--seed", type=int, default=7, help="bench/gen.py seed")
    ap.add_argument("--py-spy", metavar="DIR",
                    help="record each run's worker with py-spy (raw, 200 Hz) into DIR")
    ap.add_argument("--in-process", action="store_true",
                    help="the runs through bench/route_path.py, without Kafka or faust")
    ap.add_argument("--repeat", type=int, default=3, help="with --in-process: runs of each")
    args = ap.parse_args(argv)
    names = [r.strip().upper() for r in args.runs.split(",") if r.strip()]
    if not names or any(r not in RUNS for r in names):
        ap.error(f"--runs: a comma-separated subset of {','.join(RUNS)}")
    timeout = max(120.0, args.events / 400)
    log(f"generating {args.events} mixed events ...")
    raws = gen.mixed(args.events, seed=args.seed)
    summary = gen.summary(raws)
    log(f"  {summary}")
    doc: dict[str, Any] = {"sizes": {"events": args.events}, "input": summary,
                           "run_order": names, "runs": {}}
    t = time.monotonic()
    if args.in_process:
        doc["in_process"] = in_process(raws, names, args.repeat)
        doc["took_s"] = round(time.monotonic() - t, 1)
        write_result(args.name, doc)
        return 0
    ids: dict[str, Counter] = {}
    with Broker() as broker, Workdir("holds") as wd:
        for name, key in zip(names, run_keys(names)):
            res = run(name, broker.bootstrap, wd, raws, timeout, args.py_spy)
            ids[key] = res.pop("_ids")
            doc["runs"][key] = res
    # every run against the first of holds on (A or B): the same sink records, whatever the order
    ref = next((k for k in ids if k[0] in "AB"), next(iter(ids)))
    mismatch = {f"{ref}-{k}": d for k in ids if k != ref for d in [sink_diff(ids[ref], ids[k])]
                if d}
    doc["sink_mismatch"] = mismatch
    for pair, d in mismatch.items():
        log(f"!!! SINK RECORDS DIFFER between runs {pair}: {d}")
    if not mismatch and len(ids) > 1:
        log(f"sink records: the same multiset (destination, delivery id) in runs {list(ids)}")
    doc["compare"] = compare(doc["runs"])
    log(f"compare: {doc['compare']}")
    doc["took_s"] = round(time.monotonic() - t, 1)
    write_result(args.name, doc)
    # holds on must not depend on the order; holds off (C) may lose records (README)
    return 1 if any(k[0] in "AB" for pair in mismatch for k in [pair.split("-")[1]]) else 0


if __name__ == "__main__":
    sys.exit(main())
