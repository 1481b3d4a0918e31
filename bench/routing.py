"""Routing throughput and latency: N realistic mixed raw events (bench/gen.py) pre-produced to the
raw topics, then one real worker process (without delivery agents, see bench/worker.py) routes
them to the sink topics. Beside it, in the same run and over the same raw records, the bare
aiokafka loop (bench/bare.py): the ceiling for Python; and a minimal faust app over the same
records (bench/faust_floor.py: an empty agent, and one hop doing the bare loop's work): the floor
faust itself sets. Then a steady-rate run (default 2k events/s for 30 s) for end-to-end
latency.

    python -m bench.routing [--events N] [--rate R --seconds S] [--no-steady] [--no-bare]
                            [--bare-modes batch,send] [--faust-modes empty,route] [--profile F]
                            [--baseline DIR] [--baseline-env NAME=VALUE ...]

--baseline DIR: first the same burst with the worker of another checkout (for example
`git worktree add /tmp/base <commit>`), on the same broker and the same generated records, in
topics of its own: an A/B of the worker itself ("baseline" in the result).
--baseline-env NAME=VALUE: the baseline worker's environment; alone, an A/B of one setting on
this checkout (e.g. STREAMPROC_OUTCOMES=off vs the default on).
--rounds N (with a baseline): N pairs of bursts on the same broker, the order alternating
(baseline first, then this checkout first, ...) so that neither side always runs on the warmer
or the more loaded broker; the result has every round and, per side, the mean CPU-s per 1k
inputs and events/s, with the ratio of the means ("ab").

Throughput = inputs / (first internal record appended -> last sink record appended), from
broker append times (LogAppendTime on the internal and sink topics), so worker start-up is not
counted. Latency = sink record append time - input record time (the producer's send time).
Also CPU-seconds per 1k inputs (from /proc), which a busy host disturbs much less. A burst
ends when every source record is committed (bench.common.finished), and deletes its topics
once read back (bench.common.delete_topics), so that no burst of an A/B runs beside an earlier
one's topics (BENCH_KEEP_TOPICS=1 keeps them, as runs before 7b480d1 did)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import calls, gen
from bench.common import (
    ROOT, Broker, CpuSampler, Progress, Worker, Workdir, create_topics, delete_topics,
    end_offsets, env_int, latency_summary, log, metric_values, new_prefix, produce,
    produce_at_rate, read_topics, write_result,
)


def sink_ref(value: bytes) -> tuple[str | None, str, str]:
    """(input ref, destination, delivery id) of one sink record."""
    doc = orjson.loads(value)
    payload = doc.get("payload") or {}
    if doc.get("op") == "trigger_campaign":
        ref = (payload.get("data") or {}).get("ref")
    else:
        ref = str((doc.get("source") or {}).get("message_id", "")).split(":")[0] or None
        if ref and ref.isdigit() and int(ref) >= gen.MJ_BASE_ID:  # Mailjet array items
            ref = str(int(ref) - (int(ref) - gen.MJ_BASE_ID) % 2)
    return ref, doc.get("destination", "?"), doc.get("id", "")


def analyse(bootstrap: str, topo: Any, raws: list[gen.Raw], t_from: str,
            warmup: int = 0) -> dict[str, Any]:
    """Read raw, internal and sink topics back: throughput window, latencies, checks.
    The sink records of the first `warmup` raws are left out of the latency figures."""
    raw_topics = [t.name for t in topo.inputs.values()]
    internal = [topo.internal["by_user"].name, topo.internal["by_contact"].name]
    sinks = {d.sink.name: slug for slug, d in topo.destinations.items()}
    by_value = {r.value: r for r in raws if r.ref}
    warm = {r.ref for r in raws[:warmup] if r.ref}
    input_ts: dict[str, float] = {}
    for rec in read_topics(bootstrap, raw_topics):
        r = by_value.get(rec.value)
        if r is not None:
            input_ts[r.ref] = rec.ts / 1000
    int_ts = [rec.ts / 1000 for rec in read_topics(bootstrap, internal, with_values=False)]
    sink_recs = read_topics(bootstrap, list(sinks))
    t0 = min(int_ts) if int_ts else None
    t1 = max((r.ts / 1000 for r in sink_recs), default=None)
    per_dest: dict[str, int] = {}
    ids: set[str] = set()
    lat_in: list[float] = []
    lat_proc: list[float] = []
    timeline: dict[int, list[float]] = {}  # input second -> latencies (ms)
    unknown = 0
    for rec in sink_recs:
        ref, dest, did = sink_ref(rec.value)
        per_dest[dest] = per_dest.get(dest, 0) + 1
        ids.add(did)
        ts_in = input_ts.get(ref) if ref else None
        if ts_in is None:
            unknown += 1
            continue
        out = rec.ts / 1000
        timeline.setdefault(int(ts_in), []).append((out - ts_in) * 1000)
        if ref in warm:
            continue
        lat_in.append((out - ts_in) * 1000)
        if t0 is not None:
            lat_proc.append((out - max(ts_in, t0)) * 1000)
    res = {
        "window": {"first_internal_append": t0, "last_sink_append": t1,
                   "seconds": round(t1 - t0, 3) if t0 and t1 else None},
        "sink_records": len(sink_recs), "sink_records_per_destination": per_dest,
        "duplicate_delivery_ids": len(sink_recs) - len(ids),
        "sink_records_without_input": unknown,
        "internal_records": len(int_ts),
        "outcome_records": sum(end_offsets(bootstrap, [topo.internal["outcomes"].name]).values()),
        "latency_from_input": latency_summary(lat_in),
    }
    if t_from == "processing":
        res["latency_from_processing_start"] = latency_summary(lat_proc)
    else:  # per second of input time (warm-up included): falling behind, or one stall?
        first = min(timeline, default=0)
        res["latency_timeline"] = [
            {"s": sec - first, "count": len(v), "p50_ms": latency_summary(v)["p50_ms"],
             "p99_ms": latency_summary(v)["p99_ms"]} for sec, v in sorted(timeline.items())]
    return res


def _out_topic(bootstrap: str, topo: Any, prefix: str, name: str) -> str:
    from streamproc.config.topics import reconcile
    from streamproc.config.topology import Topology

    spec = topo.internal["by_user"]
    out_spec = type(spec)(name, f"{prefix}{name}", spec.partitions, spec.replication_factor,
                          spec.retention_ms, "delete", {"message.timestamp.type": "LogAppendTime"})
    asyncio.run(reconcile(Topology({}, {"out": out_spec}, {}), {"bootstrap_servers": bootstrap},
                          create=True))
    return out_spec.name


def _window(bootstrap: str, topic: str) -> tuple[int, float | None]:
    ts = [r.ts / 1000 for r in read_topics(bootstrap, [topic], with_values=False)]
    return len(ts), (max(ts) - min(ts) if len(ts) > 1 else None)


def run_bare(bootstrap: str, topo: Any, prefix: str, mode: str, n: int,
             timeout: float) -> dict[str, Any]:
    out = _out_topic(bootstrap, topo, prefix, f"bench.bare.{mode}")
    topics = ",".join(f"{t.name}={src}" for src, t in topo.inputs.items())
    cmd = [sys.executable, "-m", "bench.bare", "--bootstrap", bootstrap, "--topics", topics,
           "--out", out, "--group", f"{prefix}bare-{mode}", "--mode", mode]
    log(f"bare aiokafka loop ({mode}) over the same {n} raw records ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"bare loop failed:\n{proc.stderr[-3000:]}")
    own = json.loads(proc.stdout.strip().splitlines()[-1])
    outputs, secs = _window(bootstrap, out)
    eps = round(n / secs, 1) if secs else None
    res = {"mode": mode, "outputs": outputs, "window_seconds": round(secs, 3) if secs else None,
           "events_per_s": eps, "self_reported": own,
           "cpu_s_per_1k_inputs": round(own["cpu_s"] / n * 1000, 4)}
    log(f"  bare ({mode}): {eps} events/s ({outputs} outputs), "
        f"{res['cpu_s_per_1k_inputs']} cpu-s per 1k inputs")
    return res


def run_bare_pipeline(bootstrap: str, topo: Any, prefix: str, n: int,
                      timeout: float) -> dict[str, Any]:
    """bench/bare_pipeline.py over the same raw records: the worker's hops (repartition, state
    with changelog records, sinks) as a bare aiokafka loop."""
    names = {role: _out_topic(bootstrap, topo, prefix, f"bench.bare.pipeline.{role}")
             for role in ("by_user", "by_contact", "changelog", "out")}
    topics = ",".join(f"{t.name}={src}" for src, t in topo.inputs.items())
    cmd = [sys.executable, "-m", "bench.bare_pipeline", "--bootstrap", bootstrap,
           "--topics", topics, "--by-user", names["by_user"], "--by-contact",
           names["by_contact"], "--changelog", names["changelog"], "--out", names["out"],
           "--group", f"{prefix}bare-pipeline", "--timeout", str(timeout)]
    log(f"bare aiokafka pipeline (the worker's hops) over the same {n} raw records ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60,
                          cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"bare pipeline failed:\n{proc.stderr[-3000:]}")
    own = json.loads(proc.stdout.strip().splitlines()[-1])
    first = [r.ts / 1000 for r in read_topics(
        bootstrap, [names["by_user"], names["by_contact"]], with_values=False)]
    last = [r.ts / 1000 for r in read_topics(bootstrap, [names["out"]], with_values=False)]
    secs = (max(last) - min(first)) if first and last else None
    eps = round(n / secs, 1) if secs else None
    res = {"mode": "pipeline", "outputs": len(last),
           "window_seconds": round(secs, 3) if secs else None, "events_per_s": eps,
           "self_reported": own, "cpu_s_per_1k_inputs": round(own["cpu_s"] / n * 1000, 4)}
    log(f"  bare (pipeline): {eps} events/s ({len(last)} sink records, {own['outputs']}), "
        f"{res['cpu_s_per_1k_inputs']} cpu-s per 1k inputs")
    return res


def run_faust_floor(bootstrap: str, topo: Any, prefix: str, mode: str, n: int, wd: Any,
                    timeout: float) -> dict[str, Any]:
    """The minimal faust app of bench/faust_floor.py over the same raw records."""
    out = _out_topic(bootstrap, topo, prefix, f"bench.faust.{mode}") if mode == "route" else ""
    topics = ",".join(f"{t.name}={src}" for src, t in topo.inputs.items())
    result = wd / f"faust-floor-{mode}.json"
    cmd = [sys.executable, "-m", "bench.faust_floor", "--bootstrap", bootstrap,
           "--topics", topics, "--group", f"{prefix}faust-{mode}", "--mode", mode,
           "--total", str(n), "--result", str(result)] + (["--out", out] if out else [])
    log(f"minimal faust agent ({mode}) over the same {n} raw records ...")
    with open(wd / f"faust-floor-{mode}.log", "ab") as logf:
        proc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, timeout=timeout,
                              cwd=str(ROOT))
    if not result.exists():
        raise RuntimeError(f"faust floor ({mode}) wrote no result (exit {proc.returncode}); "
                           f"see {wd}/faust-floor-{mode}.log")
    own = json.loads(result.read_text())
    res: dict[str, Any] = {"mode": mode, "self_reported": own,
                           "cpu_s_per_1k_inputs": round(own["cpu_s"] / n * 1000, 4)}
    if out:
        outputs, secs = _window(bootstrap, out)
        res.update(outputs=outputs, window_seconds=round(secs, 3) if secs else None,
                   events_per_s=round(n / secs, 1) if secs else None)
    else:
        res["events_per_s"] = own["events_per_s"]
    log(f"  faust ({mode}): {res['events_per_s']} events/s, "
        f"{res['cpu_s_per_1k_inputs']} cpu-s per 1k inputs")
    return res


def changelog_records(bootstrap: str, app_id: str) -> dict[str, int]:
    """Records on the tables' changelog topics = table writes (each costs a RocksDB put, a
    persisted-offset put and a produced record)."""
    out = {}
    for table in ("known-users", "contacts"):
        ends = end_offsets(bootstrap, [f"{app_id}-{table}-changelog"])
        out[table] = sum(ends.values())
    return out


def worker_counts(w: Worker) -> dict[str, Any]:
    text = w.metrics()
    return {
        "events_in": sum(metric_values(text, "streamproc_events_in_total").values()),
        "routed": sum(metric_values(text, "streamproc_routed_total").values()),
        "dropped": sum(metric_values(text, "streamproc_dropped_total").values()),
        "dead_lettered_ingest": sum(
            metric_values(text, "streamproc_dead_lettered_ingest_total").values()),
    }


def ab_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side, the mean CPU-s per 1k inputs and events/s over the rounds, and this side's
    change against the baseline as the ratio of the means (and per round). A round that
    timed out or lacks a figure on either side is left out (counted in `left_out`)."""
    fields = (("worker_cpu_s_per_1k_inputs", "cpu_s_per_1k"), ("events_per_s", "events_per_s"))
    ok = [r for r in rounds if all(r[side].get(f) and not r[side].get("timed_out")
                                   for side in ("baseline", "burst") for f, _ in fields)]
    out: dict[str, Any] = {"rounds": len(ok), "left_out": len(rounds) - len(ok)}
    if not ok:  # no round gave both figures on both sides (timed out, no window)
        return out
    for field, name in fields:
        a = [r["baseline"][field] for r in ok]
        b = [r["burst"][field] for r in ok]
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        out[name] = {"baseline_mean": round(ma, 5), "this_mean": round(mb, 5),
                     "change_pct": round((mb / ma - 1) * 100, 1),
                     "per_round_pct": [round((y / x - 1) * 100, 1) for x, y in zip(a, b)]}
    return out


def burst(bootstrap: str, wd: Any, n: int, bare_modes: list[str], faust_modes: list[str],
          timeout: float, profile: str | None, src: Any = None,
          env: dict[str, str] | None = None, time_calls: str | None = None) -> dict[str, Any]:
    """One burst; `time_calls`: the workers' file prefix for --time-calls (bench/calls.py)."""
    prefix = new_prefix("r")
    topo = create_topics(bootstrap, prefix)
    log(f"generating {n} mixed events ...")
    raws = gen.mixed(n)
    summary = gen.summary(raws)
    log(f"  {summary}")
    rate = produce(bootstrap, topo, raws)
    log(f"pre-produced {n} records to the raw topics ({rate:.0f}/s)")
    extra = {**({"BENCH_PROFILE": profile} if profile else {}),
             **({"BENCH_TIME_CALLS": time_calls} if time_calls else {}), **(env or {})}
    w = Worker(bootstrap, prefix, f"{prefix}app", root=wd, extra_env=extra, src=src).start()
    with CpuSampler([w]) as cpu:
        ready_s = w.wait_ready()
        log(f"worker ready after {ready_s:.1f}s; routing ...")
        prog = Progress(bootstrap, topo, f"{prefix}app", summary["sinks_min"], summary["sinks_max"],
                        [w]).wait(timeout)
        counts = worker_counts(w)
        rss_kb, hwm_kb = w.rss_kb(), w.hwm_kb()
    pid = w.pid
    w.stop()
    timed = calls.read(time_calls, pid, n) if time_calls else None
    if timed and not timed["final"]:
        log("  WARNING: the worker's call timings were not written at exit: partial counts")
    res = analyse(bootstrap, topo, raws, t_from="processing")
    res["table_writes"] = changelog_records(bootstrap, f"{prefix}app")
    win = res["window"]
    secs = win["seconds"]
    eps = round(n / secs, 1) if secs else None
    worker_cpu = cpu.between(win["first_internal_append"], win["last_sink_append"]) if secs else None
    out = {
        "events": n, "input": summary, "produce_rate": round(rate), "ready_s": round(ready_s, 2),
        **prog, "worker_metrics": counts, "events_per_s": eps,
        "worker_cpu_s": worker_cpu,
        "worker_cpu_s_per_1k_inputs": round(worker_cpu / n * 1000, 4) if worker_cpu else None,
        "worker_cpu_utilisation": round(worker_cpu / secs, 2) if worker_cpu and secs else None,
        "worker_rss_mb": round(rss_kb / 1024, 1) if rss_kb else None,
        "worker_peak_rss_mb": round(hwm_kb / 1024, 1) if hwm_kb else None,
        **res,
        **({"calls": timed} if timed else {}),
    }
    log(f"worker: {eps} events/s over {secs}s; {res['sink_records']} sink records; "
        f"table writes {res['table_writes']}; "
        f"cpu {out['worker_cpu_s_per_1k_inputs']} s per 1k inputs; "
        f"latency from processing start p50 {res['latency_from_processing_start']['p50_ms']} ms "
        f"p99 {res['latency_from_processing_start']['p99_ms']} ms (backlog)")
    bare = [run_bare_pipeline(bootstrap, topo, prefix, n, timeout) if m == "pipeline"
            else run_bare(bootstrap, topo, prefix, m, n, timeout) for m in bare_modes]
    out["bare"] = {b["mode"]: b for b in bare}
    floors = [run_faust_floor(bootstrap, topo, prefix, m, n, wd, timeout) for m in faust_modes]
    out["faust_floor"] = {f["mode"]: f for f in floors}
    if os.environ.get("BENCH_KEEP_TOPICS") != "1":  # 1: kept, as before 7b480d1
        out["topics_deleted"] = len(delete_topics(bootstrap, prefix))
    ratios = {}
    for b in bare + floors:
        name = ("bare_" if b in bare else "faust_") + b["mode"]
        if eps and b.get("events_per_s"):
            ratios[f"vs_{name}"] = round(eps / b["events_per_s"], 3)
        if out["worker_cpu_s_per_1k_inputs"] and b["cpu_s_per_1k_inputs"]:
            ratios[f"cpu_efficiency_vs_{name}"] = round(
                b["cpu_s_per_1k_inputs"] / out["worker_cpu_s_per_1k_inputs"], 3)
    out["ratio"] = ratios
    out["target"] = {"ratio_vs_bare_batch_aim": 0.5,
                     "met": ratios.get("vs_bare_batch", 0) >= 0.5 if "vs_bare_batch" in ratios
                     else None}
    log(f"ratio: {ratios}")
    return out


def steady(bootstrap: str, wd: Any, rate: int, seconds: int, timeout: float,
           warmup_s: int = 5) -> dict[str, Any]:
    """`warmup_s` seconds at the same rate first, left out of the latency figures (the first
    records after start-up wait for the first fetches of every partition)."""
    prefix = new_prefix("s")
    topo = create_topics(bootstrap, prefix)
    warm = rate * warmup_s
    n = rate * seconds
    raws = gen.mixed(warm + n, seed=11)
    summary = gen.summary(raws)
    w = Worker(bootstrap, prefix, f"{prefix}app", root=wd).start()
    with CpuSampler([w]) as cpu:
        ready_s = w.wait_ready()
        time.sleep(2.0)  # let the first fetches settle
        log(f"steady rate: {rate} events/s for {warmup_s}s (warm-up) + {seconds}s "
            f"({n} events measured) ...")
        t_start = time.time()
        sent = asyncio.run(produce_at_rate(bootstrap, topo, raws, rate))
        t_sent = time.time()
        t_measured = t_start + warmup_s
        prog = Progress(bootstrap, topo, f"{prefix}app", summary["sinks_min"],
                        summary["sinks_max"], [w]).wait(timeout)
        rss_kb = w.rss_kb()
    w.stop()
    res = analyse(bootstrap, topo, raws, t_from="input", warmup=warm)
    worker_cpu = cpu.between(t_measured, t_sent)
    lat = res["latency_from_input"]
    out = {"rate": rate, "seconds": seconds, "warmup_seconds": warmup_s, "events": n,
           "ready_s": round(ready_s, 2), "produced": sent, **prog,
           "worker_cpu_utilisation": (round(worker_cpu / (t_sent - t_measured), 3)
                                      if worker_cpu else None),
           "worker_rss_mb": round(rss_kb / 1024, 1) if rss_kb else None,
           "p99_target_ms": 250, "p99_met": lat["p99_ms"] is not None and lat["p99_ms"] < 250,
           **res}
    log(f"steady: latency p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
        f"worker cpu {out['worker_cpu_utilisation']} of one core")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=env_int("BENCH_EVENTS", 200_000))
    ap.add_argument("--rate", type=int, default=env_int("BENCH_STEADY_RATE", 2000))
    ap.add_argument("--seconds", type=int, default=env_int("BENCH_STEADY_SECONDS", 30))
    ap.add_argument("--warmup", type=int, default=env_int("BENCH_STEADY_WARMUP", 5),
                    help="seconds at the steady rate before the measured window")
    ap.add_argument("--no-steady", action="store_true")
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--bare-modes", default="batch,send,pipeline",
                    help="bare aiokafka references: batch and send (one hop, bench/bare.py), "
                         "pipeline (the worker's hops, bench/bare_pipeline.py)")
    ap.add_argument("--faust-modes", default="empty,route",
                    help="minimal faust references to run (bench/faust_floor.py); '' for none")
    ap.add_argument("--profile", help="write the worker's cProfile stats to this file")
    ap.add_argument("--name", default="routing")
    ap.add_argument("--baseline", help="another checkout whose worker runs the same burst first")
    ap.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment of the baseline worker (repeatable); without --baseline "
                         "the baseline is this checkout, e.g. --baseline-env STREAMPROC_OUTCOMES=off")
    ap.add_argument("--rounds", type=int, default=1,
                    help="with a baseline: pairs of bursts, alternating which side runs first")
    ap.add_argument("--time-calls", action="store_true",
                    help="CPU time per call of the per-input functions, inside the workers "
                         "(bench/calls.py; each timed call costs about 0.9 us more)")
    args = ap.parse_args(argv)
    base_env = dict(kv.split("=", 1) for kv in args.baseline_env)
    timeout = max(180.0, args.events / 400)
    doc: dict[str, Any] = {"sizes": {"events": args.events, "steady_rate": args.rate,
                                     "steady_seconds": args.seconds,
                                     "steady_warmup_seconds": args.warmup}}
    t = time.monotonic()
    ab = bool(args.baseline or base_env)
    if args.rounds < 1 or (args.rounds > 1 and not ab):
        ap.error("--rounds: at least 1, and more than 1 only with --baseline/--baseline-env")
    if args.rounds > 1 and args.rounds % 2:
        ap.error("--rounds: an even number, so that each side runs first as often")
    if args.rounds > 1 and args.profile:
        ap.error("--profile profiles one side only: not with --rounds")
    with Broker() as broker, Workdir("routing") as wd:
        time_calls = str(wd / "calls") if args.time_calls else None

        def base() -> dict[str, Any]:
            log(f"baseline worker from {args.baseline or 'this checkout'} {base_env} ...")
            res = burst(broker.bootstrap, wd, args.events, [], [], timeout, None,
                        src=Path(args.baseline).resolve() if args.baseline else None,
                        env=base_env, time_calls=time_calls)
            res["env"] = base_env
            return res

        def this(first: bool) -> dict[str, Any]:
            return burst(broker.bootstrap, wd, args.events,
                         [] if args.no_bare or not first else args.bare_modes.split(","),
                         [m for m in args.faust_modes.split(",")
                          if m and not args.no_bare and first],
                         timeout, os.path.abspath(args.profile) if args.profile else None,
                         time_calls=time_calls)

        rounds = []
        for i in range(args.rounds):
            if not ab:
                rounds.append({"burst": this(True)})
            elif i % 2 == 0:  # baseline first in even rounds, this checkout first in odd ones
                b = base()
                rounds.append({"baseline": b, "burst": this(i == 0), "order": "baseline first"})
            else:
                t_ = this(False)
                rounds.append({"baseline": base(), "burst": t_, "order": "this first"})
        doc.update(rounds[0])
        if args.rounds > 1:
            doc["rounds"] = rounds
            doc["ab"] = ab_summary(rounds)
        if not args.no_steady:
            doc["steady"] = steady(broker.bootstrap, wd, args.rate, args.seconds,
                                   timeout=max(120.0, args.seconds * 4), warmup_s=args.warmup)
    for r in doc.get("rounds", [doc] if "baseline" in doc else []):
        a, b = r["baseline"], r["burst"]
        log(f"A/B ({r.get('order', 'baseline first')}): baseline {a['events_per_s']} events/s, "
            f"{a['worker_cpu_s_per_1k_inputs']} cpu-s per 1k; this {b['events_per_s']} "
            f"events/s, {b['worker_cpu_s_per_1k_inputs']} cpu-s per 1k")
    if "ab" in doc:
        log(f"A/B over {args.rounds} rounds: {doc['ab']}")
    if args.time_calls:
        for r in doc.get("rounds", [doc]):
            for side in ("baseline", "burst"):
                if r.get(side, {}).get("calls"):
                    log(f"{side} µs per input: {r[side]['calls']['us_per_input']}")
    doc["took_s"] = round(time.monotonic() - t, 1)
    write_result(args.name, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
