"""State size and recovery: identifies with emails for N distinct users (default 1,000,000), so
the known-users AND contacts tables each hold N keys. Measures the worker's memory (VmRSS and
its peak VmHWM from /proc), the RocksDB size on disk (du of the data dir), and the time from
process start to /ready 200:

- fresh: a new worker with empty tables (the start-up floor: imports, group join, assignment);
- local store: SIGTERM, then a worker on the same data dir (replays only the changelog tail);
- changelog only: a worker with a new, empty data dir (restores every table from its changelog).

    python -m bench.state [--contacts N]

Aims (issue "Prove it"): RSS < 500 MB at 1M contacts, ready < 60 s with the local store."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench import gen
from bench.common import (
    Broker, CpuSampler, Progress, Worker, Workdir, create_topics, du_bytes, env_int, log,
    metric_values, new_prefix, produce, write_result,
)

RSS_AIM_MB = 500
READY_AIM_S = 60


def _mb(kb: int | None) -> float | None:
    return round(kb / 1024, 1) if kb else None


def _table_keys(w: Worker) -> dict[str, float]:
    try:
        return {k: v for k, v in metric_values(w.metrics(), "streamproc_table_keys").items()}
    except Exception:  # noqa: BLE001 - a figure, not a check
        return {}


def _settle_memory(w: Worker, seconds: float = 5.0) -> dict[str, Any]:
    time.sleep(seconds)
    return {"rss_mb": _mb(w.rss_kb()), "peak_rss_mb": _mb(w.hwm_kb())}


def run(n: int, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {"contacts": n}
    with Broker() as broker, Workdir("state") as wd:
        b = broker.bootstrap
        prefix = new_prefix("st")
        app_id = f"{prefix}app"
        topo = create_topics(b, prefix)
        log(f"producing {n} identifies (distinct users and emails) ...")
        rate = produce(b, topo, gen.identifies(n))
        out["produce_rate"] = round(rate)
        data_dir = str(wd / "data-1")
        w = Worker(b, prefix, app_id, name="w1", data_dir=data_dir, root=wd).start()
        with CpuSampler([w]) as cpu:
            out["ready_fresh_s"] = round(w.wait_ready(timeout=300), 2)
            log(f"fresh worker ready after {out['ready_fresh_s']}s; filling the tables ...")
            t = time.time()
            prog = Progress(b, topo, app_id, 2 * n, 2 * n, [w]).wait(timeout)
            took = time.time() - t
        out["fill"] = {**prog, "seconds": round(took, 1),
                       "identifies_per_s": round(n / took, 1),
                       "worker_cpu_s": cpu.between(t, t + took)}
        log(f"filled in {took:.1f}s ({n / took:.0f} identifies/s)")
        out["filled"] = {**_settle_memory(w), "table_keys": _table_keys(w),
                         "data_dir_mb": round(du_bytes(data_dir) / 2**20, 1)}
        log(f"  filled: {out['filled']}")
        out["stop_s"] = round(w.stop(), 2)
        out["data_dir_mb_after_stop"] = round(du_bytes(data_dir) / 2**20, 1)

        # restart on the same data dir: local store
        w = Worker(b, prefix, app_id, name="w1", data_dir=data_dir, root=wd).start()
        ready = w.wait_ready(timeout=max(300, timeout))
        out["restart_local_store"] = {"ready_s": round(ready, 2), **_settle_memory(w),
                                      "table_keys": _table_keys(w)}
        log(f"  restart with local store: ready after {ready:.1f}s "
            f"({out['restart_local_store']})")
        w.stop()

        # a new data dir: recovery from the changelog alone
        data_dir2 = str(wd / "data-2")
        w = Worker(b, prefix, app_id, name="w1", data_dir=data_dir2, root=wd).start()
        ready = w.wait_ready(timeout=max(600, timeout))
        out["restart_from_changelog"] = {
            "ready_s": round(ready, 2), **_settle_memory(w), "table_keys": _table_keys(w),
            "data_dir_mb": round(du_bytes(data_dir2) / 2**20, 1)}
        log(f"  restart from the changelog: ready after {ready:.1f}s "
            f"({out['restart_from_changelog']})")
        w.stop()
    peak = max(v for v in (out["filled"]["peak_rss_mb"],
                           out["restart_local_store"]["peak_rss_mb"],
                           out["restart_from_changelog"]["peak_rss_mb"]) if v is not None)
    out["aims"] = {
        "rss_mb_aim": RSS_AIM_MB, "peak_rss_mb": peak,
        "rss_met": peak < RSS_AIM_MB,
        "ready_local_aim_s": READY_AIM_S,
        "ready_local_met": out["restart_local_store"]["ready_s"] < READY_AIM_S,
        "note": "aims are stated for 1M contacts" if n != 1_000_000 else "",
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.state", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=env_int("BENCH_CONTACTS", 1_000_000))
    ap.add_argument("--name", default="state")
    args = ap.parse_args(argv)
    t = time.monotonic()
    res = run(args.contacts, timeout=max(300.0, args.contacts / 250))
    write_result(args.name, {"sizes": {"contacts": args.contacts}, **res,
                             "took_s": round(time.monotonic() - t, 1)})
    log(f"state: {res['aims']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
