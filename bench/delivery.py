"""Delivery throughput: N sink records per destination (default 100,000) pre-produced to the sink
topics, delivered by a real worker process to the local sandbox APIs, beside a bare httpx loop
posting the same batches to the same fakes (the ceiling on this machine).

    python -m bench.delivery [--records N] [--destinations mailmodo,segment,...] [--no-bare]
                             [--trickle M]

Per destination, in this order: produce N records to its sink topic (worker stopped), start a
worker, wait until the fake has accepted all N, measure; then a trickle of M records at a low
rate for steady-state latency; stop the worker; then the bare loop over the same records.

- records/s: N / (first -> last request received by the fake), with the usual k/(k-1)
  correction for k requests, so worker start-up is not counted (same formula for both sides).
- requests/s and mean batch size: accepted requests in that window, records per request.
- backlog p50/p99: receive time - first receive (each record's place in the drain of a full
  backlog; the same origin for the worker and the bare loop).
- steady p50/p99 (worker only): fake receive time - produce time, at `--trickle-rate` rec/s.
- CPU: seconds of the worker, of the fake process and of the bare loop (from /proc), so the
  bottleneck shows: a fake near 100% of one core is the limit (it limits the bare loop too,
  which keeps the ratio fair).

The fakes run in their own process (so the bare loop does not share a GIL with them); rate
limits are lifted (STREAMPROC_<DEST>_RATE_LIMIT_RPS=0); other delivery settings are defaults.
The broker is STREAMPROC_KAFKA_BOOTSTRAP_SERVERS (or STREAMPROC_BENCH_BOOTSTRAP_SERVERS), else
a local one started here. JSON goes to bench/results/delivery.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import (
    DESTS, RESULTS, Worker, Workdir, _group_offsets, create_topics, env_int, latency_summary, log,
    new_prefix, proc_cpu_seconds, write_result,
)
from streamproc.dev.localkafka import LocalKafka

BATCHED = ("mailmodo", "segment", "clevertap")  # many records per request
SIDES = ("worker", "bare", "bare_kafka")
TARGET_RATIO = 0.70


# ------------------------------------------------------------------------------ records


def sink_record(dest: str, run: str, i: int, t0: float) -> tuple[bytes, dict[str, Any]]:
    """(key, sink record) number i for `dest`; `t0` (its creation time) rides in the body."""
    props = {"t0": t0, "n": i}
    if dest in ("mailmodo", "mailjet"):
        email = f"bench-{run}-{i}@example.com"
        key, op, payload = email, "contact_upsert", {"email": email, "traits": dict(props)}
    elif dest == "segment":
        key, op = f"user-{run}-{i}", "track"
        payload = {"message": {
            "type": "track", "event": "Bench Event", "userId": key, "properties": props,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "messageId": f"bench-{run}-{i}"}}
    else:
        key, op = f"__bench-{run}-{i}", "event"
        payload = {"object_id": key, "evt_name": "Bench Event", "evt_data": props, "ts": int(t0)}
    return key.encode(), {"id": f"{dest}-{run}-{i}", "destination": dest, "op": op, "key": key,
                          "payload": payload, "source": {}, "created_at": t0}


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes, dict]],
                  rate: float | None = None) -> None:
    """Produce (key, record); with `rate`, paced at that many records/s and stamped at send."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                         linger_ms=1 if rate else 20, max_batch_size=512 * 1024)
    await p.start()
    try:
        futs = []
        start = time.monotonic()
        for n, (key, rec) in enumerate(items):
            if rate:
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.time()
                rec["created_at"] = now
                _stamp(rec, now)
            futs.append(await p.send(topic, key=key, value=orjson.dumps(rec)))
            if len(futs) >= 20000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
    finally:
        await p.stop()


def _stamp(rec: dict, t0: float) -> None:
    p = rec["payload"]
    target = (p.get("traits") or p.get("evt_data")
              or (p.get("message") or {}).get("properties"))
    target["t0"] = t0


# ------------------------------------------------------------------------------ fakes process


def _accepted(fake: Any, dest: str) -> list[tuple[float, float]]:
    """(receive time, t0) of every record the fake accepted."""
    out = []
    for r in fake.requests():
        if r.status is None or not 200 <= r.status < 300 or not isinstance(r.body, dict):
            continue
        if dest == "mailmodo":
            out += [(r.time, v["data"]["t0"]) for v in r.body.get("values", [])]
        elif dest == "segment":
            out += [(r.time, m["properties"]["t0"]) for m in r.body.get("batch", [])]
        elif dest == "clevertap":
            out += [(r.time, d["evtData"]["t0"]) for d in r.body.get("d", [])]
        elif r.path.endswith("/managecontact"):
            out.append((r.time, r.body["Properties"]["t0"]))
    return out


def _received(fake: Any, dest: str) -> list[int]:
    """The `n` of every record the fake accepted."""
    out = []
    for r in fake.requests():
        if r.status is None or not 200 <= r.status < 300 or not isinstance(r.body, dict):
            continue
        if dest == "mailmodo":
            out += [v["data"]["n"] for v in r.body.get("values", [])]
        elif dest == "segment":
            out += [m["properties"]["n"] for m in r.body.get("batch", [])]
        elif dest == "clevertap":
            out += [d["evtData"]["n"] for d in r.body.get("d", [])]
        elif r.path.endswith("/managecontact"):
            out.append(r.body["Properties"]["n"])
    return out


def _count(fake: Any, dest: str) -> int:
    with fake.lock:
        if dest == "mailmodo":
            return len(fake.contacts)
        if dest == "segment":
            return len(fake.messages)
        if dest == "clevertap":
            return len(fake.records)
        return len(fake.operations)


def _fakes_main(conn: Any) -> None:
    """The fake APIs' own process: serve them, answer commands from the benchmark."""
    from streamproc.dev.sandbox import SandboxServer

    server = SandboxServer()
    server.start()
    conn.send(server.base_urls)
    while True:
        cmd, *args = conn.recv()
        if cmd == "stop":
            server.stop()
            conn.send(None)
            return
        fake = server[args[0]]
        if cmd == "reset":
            fake.reset()
            if args[0] == "mailjet":  # as if defined in the Mailjet UI beforehand
                fake.define_property("t0", "float")
                fake.define_property("n", "int")
            conn.send(None)
        elif cmd == "count":
            conn.send(_count(fake, args[0]))
        elif cmd == "received":
            conn.send(_received(fake, args[0]))
        elif cmd == "stats":
            conn.send(_stats(fake, args[0], since_n=args[1]))


def _stats(fake: Any, dest: str, since_n: int) -> dict[str, Any]:
    """Figures over the fake's log; records after the first `since_n` are the trickle."""
    acc = _accepted(fake, dest)
    ok_requests = sorted({r.time for r in fake.requests()
                          if r.status is not None and 200 <= r.status < 300})
    other = sum(1 for r in fake.requests() if r.status is None or not 200 <= r.status < 300)
    backlog, trickle = acc[:since_n], acc[since_n:]
    out: dict[str, Any] = {"accepted": len(acc), "failed_requests": other}
    if backlog:
        times = sorted(t for t, _ in backlog)
        first, last = times[0], times[-1]
        reqs = [t for t in ok_requests if first <= t <= last]
        k = max(1, len(reqs))
        window = (last - first) * k / (k - 1) if k > 1 else None
        out.update({
            "seconds": round(window, 3) if window else None,
            "records_per_s": round(len(backlog) / window, 1) if window else None,
            "requests": len(reqs),
            "requests_per_s": round(len(reqs) / window, 1) if window else None,
            "mean_batch": round(len(backlog) / k, 1),
            "backlog_latency": latency_summary([(t - first) * 1000 for t in times]),
        })
    if trickle:
        out["steady_latency"] = latency_summary([(t - t0) * 1000 for t, t0 in trickle])
    return out


class Fakes:
    """The sandbox APIs in a child process, driven through a pipe."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_fakes_main, args=(child,), daemon=True)
        self.proc.start()
        self.urls: dict[str, str] = self.conn.recv()

    def call(self, *cmd: Any) -> Any:
        self.conn.send(cmd)
        return self.conn.recv()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid) or 0.0

    def wait_count(self, dest: str, n: int, timeout: float, stall_s: float = 20.0) -> bool:
        """True once the fake accepted `n` records; False at the timeout or when nothing new
        arrived for `stall_s` seconds."""
        deadline = time.monotonic() + timeout
        last_log = last_change = time.monotonic()
        seen = -1
        while time.monotonic() < deadline:
            got = self.call("count", dest)
            if got >= n:
                return True
            if got != seen:
                seen, last_change = got, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                log(f"  {dest}: stalled at {got}/{n} for {stall_s:.0f}s")
                return False
            if time.monotonic() - last_log > 10:
                log(f"  {dest}: {got}/{n} accepted")
                last_log = time.monotonic()
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        try:
            self.call("stop")
        finally:
            self.proc.join(10)


# ------------------------------------------------------------------------------ bare loop


async def bare_loop(dest: str, records: list[dict], batch_size: int, env: dict[str, str],
                    ) -> None:
    """The same batches (topics.yaml batch size -> the destination's own mapping) posted by a
    plain httpx client with the destination's concurrency cap (one at a time for exclusive
    requests, as Mailmodo's addToList/batch). No Kafka, no engine, no ledger."""
    from streamproc.config.settings import load_settings
    from streamproc.core.records import SinkRecord
    from streamproc.delivery.client import build_client, encode_body
    from streamproc.destinations.registry import destination

    module = destination(dest)
    settings = load_settings(env, strict=False).destination(dest)
    sinks = [SinkRecord.from_dict(r) for r in records]
    requests = []
    for i in range(0, len(sinks), batch_size):
        built, failed = module.build_requests(sinks[i:i + batch_size], settings)
        assert not failed, failed[:1]
        requests += built
    concurrency = 1 if all(r.exclusive for r in requests) else settings.delivery.concurrency
    queue = iter(requests)
    client = build_client(module, settings)
    content_type = client.headers.get("Content-Type", "application/json")

    async def lane() -> None:
        for request in queue:
            r = await client.request(request.method, request.path,
                                     content=encode_body(request.body),
                                     headers={"Content-Type": content_type})
            if r.status_code >= 300:
                raise RuntimeError(f"bare loop: HTTP {r.status_code} {r.text[:200]}")

    async with client:
        await asyncio.gather(*(lane() for _ in range(concurrency)))


async def bare_kafka_loop(bootstrap: str, topic: str, total: int, batch_size: int,
                          env: dict[str, str]) -> None:
    """Kafka -> HTTP without faust, the engine or the ledger: one aiokafka consumer (its own
    group, from the beginning) takes up to `batch_size` records, the destination's mapping
    builds the requests, a plain httpx client posts them (concurrency cap as above), offsets are
    committed every second. The worker's design minus its framework: the ceiling for a Python
    Kafka -> HTTP deliverer on this machine."""
    from aiokafka import AIOKafkaConsumer

    from streamproc.config.settings import load_settings
    from streamproc.core.records import SinkRecord
    from streamproc.delivery.client import build_client, encode_body
    from streamproc.destinations.registry import destination

    module = destination(topic.rsplit(".", 1)[-1])
    settings = load_settings(env, strict=False).destination(module.NAME)
    client = build_client(module, settings)
    content_type = client.headers.get("Content-Type", "application/json")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"bare-{time.time_ns()}", enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    done, last_commit = 0, time.monotonic()

    async def post(requests: list[Any], lanes: int) -> None:
        queue = iter(requests)

        async def lane() -> None:
            for request in queue:
                r = await client.request(request.method, request.path,
                                         content=encode_body(request.body),
                                         headers={"Content-Type": content_type})
                if r.status_code >= 300:
                    raise RuntimeError(f"bare kafka loop: HTTP {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(lane() for _ in range(lanes)))

    try:
        async with client:
            while done < total:
                got = await consumer.getmany(timeout_ms=200, max_records=batch_size)
                msgs = [m for batch in got.values() for m in batch]
                if not msgs:
                    continue
                records = [SinkRecord.loads(m.value) for m in msgs]
                requests, failed = module.build_requests(records, settings)
                assert not failed, failed[:1]
                lanes = 1 if all(r.exclusive for r in requests) else settings.delivery.concurrency
                await post(requests, lanes)
                done += len(msgs)
                if time.monotonic() - last_commit >= 1.0:
                    await consumer.commit()
                    last_commit = time.monotonic()
            await consumer.commit()
    finally:
        await consumer.stop()


# ------------------------------------------------------------------------------ one destination


async def _positions(bootstrap: str, topic: str) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record on `topic`."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         max_partition_fetch_bytes=8 * 1024 * 1024)
    await c.start()
    try:
        await c._client.force_metadata_update()  # noqa: SLF001
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        ends = await c.end_offsets(tps)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list[tuple[int, int, bytes]] = []
        while len(out) < sum(ends.values()):
            for tp, msgs in (await c.getmany(timeout_ms=500, max_records=50000)).items():
                out += [(tp.partition, m.offset, m.value) for m in msgs]
        return out
    finally:
        await c.stop()


@dataclass
class Run:
    bootstrap: str
    topo: Any
    fakes: Fakes
    records: int
    trickle: int
    trickle_rate: float
    bare: bool
    workdir: Any
    prefix: str

    def worker_env(self) -> dict[str, str]:
        from streamproc.dev.sandbox import sandbox_env

        env = sandbox_env(self.fakes.urls)
        for d in DESTS:
            env[f"STREAMPROC_{d.upper()}_RATE_LIMIT_RPS"] = "0"
        return env

    def lost(self, dest: str, topic: str, items: list[tuple[bytes, dict]]) -> list[dict]:
        """Records the worker stopped short of: if the group committed past them, they were
        acknowledged without being delivered or dead-lettered (an at-least-once violation)."""
        time.sleep(3)
        got = set(self.fakes.call("received", dest))
        missing = {rec["id"] for n, (_, rec) in enumerate(items) if n not in got}
        committed = {p: off for (t, p), off in asyncio.run(
            _group_offsets(self.bootstrap, f"{self.prefix}app")).items() if t == topic}
        out = []
        for partition, offset, value in asyncio.run(_positions(self.bootstrap, topic)):
            doc = orjson.loads(value)
            if doc["id"] in missing:
                out.append({"id": doc["id"], "partition": partition, "offset": offset,
                            "committed": committed.get(partition)})
        for item in out:
            past = item["committed"] is not None and item["committed"] > item["offset"]
            item["committed_past_it"] = past
            log(f"  {dest}: NOT DELIVERED {item['id']} (partition {item['partition']} offset "
                f"{item['offset']}, group committed {item['committed']})"
                + (" -> AT-LEAST-ONCE VIOLATION: acknowledged, never delivered" if past else ""))
        return out

    def destination(self, dest: str) -> dict[str, Any]:
        run = f"{int(time.time())}"
        topic = self.topo.destinations[dest].sink.name
        batch_size = self.topo.destinations[dest].batch_size
        t0 = time.time()
        items = [sink_record(dest, run, i, t0) for i in range(self.records)]
        log(f"{dest}: producing {self.records} sink records ...")
        asyncio.run(produce(self.bootstrap, topic, items))
        self.fakes.call("reset", dest)
        timeout = 60 + self.records / 100
        worker = Worker(self.bootstrap, self.prefix, f"{self.prefix}app", name=f"d-{dest}",
                        delivery=True, extra_env=self.worker_env(), root=self.workdir)
        worker.start()
        fake_cpu0 = self.fakes.cpu()
        try:
            worker.wait_ready()
            cpu0 = worker.cpu() or 0.0
            log(f"{dest}: worker ready, delivering ...")
            lost: list[dict[str, Any]] = []
            if not self.fakes.wait_count(dest, self.records, timeout):
                lost = self.lost(dest, topic, items)
                if not lost:
                    raise RuntimeError(f"{dest}: the worker did not deliver {self.records} "
                                       f"records within {timeout:.0f}s:\n{worker.log_tail()}")
            worker_cpu = (worker.cpu() or 0.0) - cpu0
            fake_cpu = self.fakes.cpu() - fake_cpu0
            trickled = 0
            if self.trickle and not lost:
                trickle = [sink_record(dest, run + "t", i, 0.0) for i in range(self.trickle)]
                log(f"{dest}: trickle of {self.trickle} at {self.trickle_rate:g}/s ...")
                asyncio.run(produce(self.bootstrap, topic, trickle, rate=self.trickle_rate))
                trickled = len(trickle)
                self.fakes.wait_count(dest, self.records + self.trickle, 60)
        finally:
            worker.stop()
        result = {"worker": self.fakes.call("stats", dest, self.records - len(lost))}
        if lost:
            result["worker"]["lost"] = lost
        result["worker"].update({"worker_cpu_s": round(worker_cpu, 2),
                                 "fake_cpu_s": round(fake_cpu, 2)})
        if self.bare:
            self.fakes.call("reset", dest)
            log(f"{dest}: bare httpx loop over the same {self.records} records ...")
            fake_cpu0, cpu0 = self.fakes.cpu(), time.process_time()
            asyncio.run(bare_loop(dest, [r for _, r in items], batch_size, self.worker_env()))
            result["bare"] = self.fakes.call("stats", dest, self.records)
            result["bare"].update({"loop_cpu_s": round(time.process_time() - cpu0, 2),
                                   "fake_cpu_s": round(self.fakes.cpu() - fake_cpu0, 2)})
            self.fakes.call("reset", dest)
            log(f"{dest}: bare aiokafka -> httpx loop over the same records ...")
            fake_cpu0, cpu0 = self.fakes.cpu(), time.process_time()
            asyncio.run(bare_kafka_loop(self.bootstrap, topic, self.records + trickled,
                                        batch_size, self.worker_env()))
            result["bare_kafka"] = self.fakes.call("stats", dest, self.records)
            result["bare_kafka"].pop("steady_latency", None)  # the trickle is just records here
            result["bare_kafka"].update({"loop_cpu_s": round(time.process_time() - cpu0, 2),
                                         "fake_cpu_s": round(self.fakes.cpu() - fake_cpu0, 2)})
            w = result["worker"].get("records_per_s")
            b = result["bare"].get("records_per_s")
            k = result["bare_kafka"].get("records_per_s")
            result["ratio"] = round(w / b, 3) if w and b else None
            result["ratio_kafka"] = round(w / k, 3) if w and k else None
        for side in SIDES:
            s = result.get(side)
            if s and s.get("seconds"):
                s["fake_cpu_pct"] = round(100 * s["fake_cpu_s"] / s["seconds"], 1)
        result["batched"] = dest in BATCHED
        return result


# ------------------------------------------------------------------------------ report


def _fmt(v: Any, unit: str = "") -> str:
    return "-" if v is None else f"{v:,.0f}{unit}" if isinstance(v, float) and v >= 100 \
        else f"{v}{unit}"


def print_table(results: dict[str, dict[str, Any]], records: int) -> None:
    head = (f"{'destination':<11} {'side':<10} {'rec/s':>9} {'req/s':>8} {'batch':>6} "
            f"{'backlog p50/p99 ms':>19} {'steady p50/p99 ms':>18} {'fake cpu':>8}  ratio")
    print(f"\nDelivery of {records:,} sink records per destination")
    print(head)
    print("-" * len(head))
    for dest, r in results.items():
        for side in SIDES:
            s = r.get(side)
            if not s:
                continue
            bl, st = s.get("backlog_latency") or {}, s.get("steady_latency") or {}
            ratio = ""
            if side == "worker" and r.get("ratio") is not None:
                ratio = f"{r['ratio']:.1%} of bare, {r['ratio_kafka']:.0%} of bare_kafka"
            print(f"{dest if side == 'worker' else '':<11} {side:<10} "
                  f"{_fmt(s.get('records_per_s')):>9} {_fmt(s.get('requests_per_s')):>8} "
                  f"{_fmt(s.get('mean_batch')):>6} "
                  f"{_fmt(bl.get('p50_ms')) + '/' + _fmt(bl.get('p99_ms')):>19} "
                  f"{(_fmt(st.get('p50_ms')) + '/' + _fmt(st.get('p99_ms'))) if st else '':>18} "
                  f"{_fmt(s.get('fake_cpu_pct'), '%'):>8}  {ratio}")
    for dest, r in results.items():
        lost = (r.get("worker") or {}).get("lost") or []
        past = [x for x in lost if x.get("committed_past_it")]
        if lost:
            print(f"{dest}: {len(lost)} record(s) NOT delivered by the worker, {len(past)} of them "
                  f"below the group's committed offset (acknowledged, never delivered): "
                  + ", ".join(f"p{x['partition']}@{x['offset']}" for x in lost[:10]))
    print()


def _previous_results(running: list[str]) -> dict[str, Any]:
    """Destinations of the last delivery.json that this run does not redo (a run over a subset
    of the destinations keeps the others' figures, each with its own `records`)."""
    path = RESULTS / "delivery.json"
    try:
        old = json.loads(path.read_text()).get("destinations", {})
    except (OSError, ValueError):
        return {}
    return {d: r for d, r in old.items() if d not in running and "records" in r}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__)
    parser.add_argument("--records", type=int,
                        default=env_int("BENCH_DELIVERY_RECORDS", 100_000))
    parser.add_argument("--destinations", default=",".join(DESTS))
    parser.add_argument("--trickle", type=int, default=300,
                        help="records for the steady-latency run (0: skip)")
    parser.add_argument("--trickle-rate", type=float, default=100.0)
    parser.add_argument("--no-bare", action="store_true")
    args = parser.parse_args(argv)
    dests = [d.strip() for d in args.destinations.split(",") if d.strip()]
    unknown = set(dests) - set(DESTS)
    if unknown:
        parser.error(f"unknown destinations: {', '.join(sorted(unknown))}")

    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the worker, the fakes and the broker stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bootstrap = (os.environ.get("STREAMPROC_KAFKA_BOOTSTRAP_SERVERS")
                 or os.environ.get("STREAMPROC_BENCH_BOOTSTRAP_SERVERS", ""))
    kafka = None
    if not bootstrap:
        log("starting a local Kafka broker (127.0.0.1) ...")
        kafka = LocalKafka(heap=os.environ.get("STREAMPROC_KAFKA_HEAP", "1g")).start()
        bootstrap = kafka.bootstrap
    fakes = Fakes()
    started = time.time()
    try:
        prefix = new_prefix("d")
        topo = create_topics(bootstrap, prefix)
        results: dict[str, dict[str, Any]] = {}
        with Workdir("delivery") as workdir:
            run = Run(bootstrap, topo, fakes, args.records, args.trickle, args.trickle_rate,
                      not args.no_bare, workdir, prefix)
            for dest in dests:
                results[dest] = run.destination(dest)
                log(f"{dest}: {results[dest]['worker'].get('records_per_s')} rec/s "
                    f"(bare {(results[dest].get('bare') or {}).get('records_per_s')})")
        print_table(results, args.records)
        for r in results.values():
            r["records"] = args.records
        results = {**_previous_results(dests), **results}
        batched = [r["ratio"] for d, r in results.items() if d in BATCHED and r.get("ratio")]
        batched_k = [r["ratio_kafka"] for d, r in results.items()
                     if d in BATCHED and r.get("ratio_kafka")]
        summary = {"records_per_destination": args.records, "destinations": results,
                   "target_ratio_batched": TARGET_RATIO,
                   "min_ratio_batched": min(batched) if batched else None,
                   "min_ratio_kafka_batched": min(batched_k) if batched_k else None,
                   "env": {k: v for k, v in os.environ.items()
                           if k in ("PRODUCER_LINGER", "STREAM_BUFFER_MAXSIZE")},
                   "elapsed_s": round(time.time() - started, 1)}
        write_result("delivery", summary)
        if batched:
            verdict = "meets" if min(batched) >= TARGET_RATIO else "MISSES"
            print(f"batched destinations: worst ratio to the bare httpx loop {min(batched):.1%} "
                  f"-> {verdict} the {TARGET_RATIO:.0%} target; to the bare aiokafka->httpx "
                  f"loop {min(batched_k):.0%}")
        return 0
    finally:
        fakes.stop()
        if kafka is not None:
            kafka.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
