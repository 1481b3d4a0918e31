"""The pure route path in-process, without Kafka or faust: the same generated records through
streamproc's own per-record code (ingest_outputs -> user_outputs / contact_outputs, table values
encoded/decoded as in the worker, state in a dict or in rocksdict), timed per stage. This is
the Python cost streamproc adds on top of faust and aiokafka; compare it with the worker's CPU
per input from bench/routing.py to see how much of that is ours.

    python -m bench.route_path [--events N] [--store dict|rocksdict] [--cpu] [--worker-gc]
                               [--profile]

STREAMPROC_* variables apply as in the worker (e.g. STREAMPROC_OUTCOMES=off);
BENCH_ROUTE_PATH_BATCH sets the inputs per agent batch (500; the worker's are up to 2000)."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

from bench import gen
from bench.common import env_int, log, write_result


class Msg:
    __slots__ = ("topic", "partition", "offset", "key", "value", "timestamp", "headers")

    def __init__(self, topic: str, key: bytes | None, value: bytes, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key, self.value, self.timestamp, self.headers = key, value, 1795000000000, None


class Ev:
    __slots__ = ("message",)

    def __init__(self, message: Msg) -> None:
        self.message = message


class RocksTable:
    """rocksdict with the Table surface the agents use (get, __setitem__), str keys."""

    def __init__(self, path: str) -> None:
        from rocksdict import Rdict

        self.db = Rdict(path)

    def get(self, key: str, default: Any = None) -> Any:
        v = self.db.get(key.encode())
        return default if v is None else v

    def __setitem__(self, key: str, value: bytes) -> None:
        self.db[key.encode()] = value


def _settings(default: Any) -> Any:
    """The STREAMPROC_* environment (e.g. STREAMPROC_OUTCOMES=off, STREAMPROC_HOLD_SECONDS=0),
    as the worker reads it; Settings() alone ignored it."""
    try:
        from streamproc.config.settings import load_settings
    except ImportError:  # an old checkout
        return default()
    return load_settings()


def _worker_gc(settings: Any) -> None:
    """The collector as the worker runs it (streamproc/app/run.py): its threshold, and what is
    alive now (modules, the generated records) frozen."""
    try:
        from streamproc.worker import gc_tuning
    except ImportError:  # a checkout from before the package re-layout
        from streamproc import gc_tuning  # type: ignore[no-redef]
    gc_tuning.configure(settings.gc_threshold)
    gc_tuning.freeze_startup_heap(settings.gc_threshold)


def runtime(store: str) -> Any:
    from streamproc.config.settings import Settings
    from streamproc.config.topology import load_topology
    from streamproc.core.metrics import Metrics

    from bench.common import TOPICS_FILE

    topo = load_topology(TOPICS_FILE)
    if store == "rocksdict":
        tmp = tempfile.mkdtemp(prefix="route-path-")
        tables = {"users": RocksTable(tmp + "/users"), "contacts": RocksTable(tmp + "/contacts")}
    else:
        tables = {"users": {}, "contacts": {}}
    rt = SimpleNamespace(topology=topo, metrics=Metrics(), tables=tables, table_writers={},
                         outcomes=None, hold_index=None, settings=_settings(Settings))
    try:
        from streamproc.worker.outcomes import install
    except ImportError:  # before outcomes (issue 15)
        return rt
    install(rt)  # outcome records as the worker writes them (STREAMPROC_OUTCOMES=off: none)
    return rt


def run(n: int, store: str, profile: bool, cpu: bool = False, raws: list[Any] | None = None,
        hold_seconds: float | None = None, worker_gc: bool = False) -> dict[str, Any]:
    """`raws`: these records in this order (bench/holds.py), else gen.mixed(n); `hold_seconds`:
    STREAMPROC_HOLD_SECONDS for this run, else the default; `worker_gc`: the worker's GC
    tuning (STREAMPROC_GC_THRESHOLD, the start-up heap frozen), else Python's defaults."""
    import dataclasses

    from streamproc.core.routing.config import RoutingConfig
    import streamproc.worker.agents as agents

    rt = runtime(store)
    if hold_seconds is not None:
        rt.settings = dataclasses.replace(rt.settings, routing=dataclasses.replace(
            rt.settings.routing, hold_seconds=hold_seconds))
    cfg = RoutingConfig.from_settings(rt.settings, rt.topology.enabled)
    raws = gen.mixed(n) if raws is None else raws
    if worker_gc:
        _worker_gc(rt.settings)
    names = {src: t.name for src, t in rt.topology.inputs.items()}
    by_user = rt.topology.internal["by_user"].name
    by_contact = rt.topology.internal["by_contact"].name
    # --cpu: the thread's CPU time, which other processes on a busy host disturb much less
    clock = time.thread_time if cpu else time.perf_counter
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    t_ingest = t_users = t_contacts = 0.0
    n_user = n_contact = n_sink = 0
    now = time.time()
    batch = env_int("BENCH_ROUTE_PATH_BATCH", 500)  # inputs per agent batch (worker: <= 2000)
    batched = hasattr(agents, "BatchContext")  # per-batch tables and metric counts
    state_handler = _batched_state if batched else None
    for i in range(0, len(raws), batch):
        chunk = raws[i:i + batch]
        t = clock()
        internal = []
        ctx = agents.BatchContext(rt) if batched else None
        for j, r in enumerate(chunk):
            m = Msg(names[r.input], r.key, r.value, i + j)
            internal += (agents.ingest_outputs(rt, r.input, m, ctx) if ctx
                         else agents.ingest_outputs(rt, r.input, m))
        if ctx:
            ctx.flush()
        _outcomes(agents, rt)
        t_ingest += clock() - t
        # users stage, then contacts stage (their contact updates included)
        users_in = [Ev(Msg(o[0], o[1], o[2], k)) for k, o in enumerate(internal) if o[0] == by_user]
        contacts_in = [Ev(Msg(o[0], o[1], o[2], k)) for k, o in enumerate(internal)
                       if o[0] == by_contact]
        t = clock()
        out_u = _state(rt, cfg, "users", users_in, now, state_handler)
        t_users += clock() - t
        contacts_in += [Ev(Msg(o[0], o[1], o[2], k)) for k, o in enumerate(out_u)
                        if o[0] == by_contact]
        t = clock()
        out_c = _state(rt, cfg, "contacts", contacts_in, now, state_handler)
        t_contacts += clock() - t
        n_user += len(users_in)
        n_contact += len(contacts_in)
        n_sink += sum(1 for o in out_u + out_c if o[0] not in (by_user, by_contact))
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    total = t_ingest + t_users + t_contacts
    res = {
        "events": n, "store": store, "clock": "cpu" if cpu else "wall",
        "gc": "worker" if worker_gc else "default", "sink_records": n_sink,
        "users_stage_events": n_user, "contacts_stage_events": n_contact,
        "us_per_input": {"ingest": round(t_ingest / n * 1e6, 1),
                         "users": round(t_users / n * 1e6, 1),
                         "contacts": round(t_contacts / n * 1e6, 1),
                         "total": round(total / n * 1e6, 1)},
        "us_per_stage_event": {"ingest": round(t_ingest / n * 1e6, 1),
                               "users": round(t_users / max(1, n_user) * 1e6, 1),
                               "contacts": round(t_contacts / max(1, n_contact) * 1e6, 1)},
    }
    log(f"route path ({store}): {res['us_per_input']} us per input; {n_sink} sink records")
    return res


def _batched_state(rt: Any, cfg: Any, name: str, events: list[Ev], now: float) -> list:
    """As agents._process_state_batch does it (without faust's current event)."""
    import streamproc.worker.agents as agents

    handle = agents.user_outputs if name == "users" else agents.contact_outputs
    ctx = agents.BatchContext(rt)
    out: list = []
    for ev in events:
        out += handle(rt, cfg, ev.message, now, ctx)
    ctx.flush()
    return out + _outcomes(agents, rt)


def _outcomes(agents: Any, rt: Any) -> list:
    """The batch's outcome records, as the agents send them (STREAMPROC_OUTCOMES=off: none)."""
    take = getattr(agents, "take_outcomes", None)
    return take(rt) if take else []


def _state(rt: Any, cfg: Any, name: str, events: list[Ev], now: float, batch_api: Any) -> list:
    import streamproc.worker.agents as agents

    if batch_api is not None:
        return batch_api(rt, cfg, name, events, now)
    handle = agents.user_outputs if name == "users" else agents.contact_outputs
    out: list = []
    for ev in events:
        out += handle(rt, cfg, ev.message, now)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.route_path", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=env_int("BENCH_ROUTE_PATH_EVENTS", 100_000))
    ap.add_argument("--store", choices=("dict", "rocksdict"), default="rocksdict")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--cpu", action="store_true",
                    help="time the stages in CPU time of the thread instead of wall time")
    ap.add_argument("--worker-gc", action="store_true",
                    help="the worker's GC tuning (STREAMPROC_GC_THRESHOLD) instead of Python's "
                         "defaults")
    ap.add_argument("--name", default="route_path")
    args = ap.parse_args(argv)
    write_result(args.name, {"sizes": {"events": args.events}, "result": run(
        args.events, args.store, args.profile, args.cpu, worker_gc=args.worker_gc)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
