"""What faust itself costs here: a minimal faust app (same faust settings as streamproc: raw
serializers, take_events(500, 0.05), acks=all producer, commit every 1000 or 1 s) with ONE
agent over the raw topics, in its own process. Two modes:

- empty: the agent only takes batches (faust's per-event machinery and nothing else);
- route: the agent does what bench/bare.py does (orjson, trivial routing, produce the outputs
  with aiokafka send_batch and await the acks) -- a one-hop faust version of the bare loop.

streamproc does two such hops per input (raw -> repartition -> state) plus table changelogs,
so 2x the `route` figure is about the floor for any faust design of it.

    python -m bench.faust_floor --bootstrap H:P --topics t=src,... --group G --mode empty|route
                                [--out T] --result FILE"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import sys
import tempfile
import time
from typing import Any

import orjson


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--mode", choices=("empty", "route"), default="empty")
    ap.add_argument("--out")
    ap.add_argument("--total", type=int, required=True, help="records to wait for")
    ap.add_argument("--result", required=True)
    args = ap.parse_args()

    import faust
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner
    from faust.worker import Worker

    from bench.bare import route

    sources = dict(item.split("=", 1) for item in args.topics.split(","))
    app = faust.App(
        args.group, broker=f"kafka://{args.bootstrap}", store="memory://",
        datadir=tempfile.mkdtemp(prefix="faust-floor-"), autodiscover=False,
        web_enabled=False, producer_acks=-1, consumer_auto_offset_reset="earliest",
        broker_commit_every=1000, broker_commit_interval=1.0, stream_wait_empty=False,
        topic_replication_factor=1, logging_config=None, loghandlers=[],
    )
    app.conf.producer_linger = 0.005
    topic = app.topic(*sources, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {"n": 0, "out": 0, "t0": None, "cpu0": 0.0, "done": False}
    producer: dict[str, Any] = {}

    @app.agent(topic, name="floor")
    async def floor(stream: Any) -> None:
        users: dict[str, str] = {}
        partitioner = DefaultPartitioner()
        async for events in stream.take_events(500, 0.05):
            if state["t0"] is None:
                state["t0"], state["cpu0"] = time.monotonic(), _cpu()
            if args.mode == "route":
                p = producer.get("p")
                if p is None:
                    p = producer["p"] = AIOKafkaProducer(
                        bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True,
                        linger_ms=5, max_batch_size=256 * 1024)
                    await p.start()
                    producer["parts"] = sorted(await p.partitions_for(args.out))
                now = time.time()
                outs: list[tuple[bytes, bytes]] = []
                for ev in events:
                    m = ev.message
                    outs += route(sources[m.topic], m.value, users, now)
                batches: dict[int, Any] = {}
                futs = []
                parts = producer["parts"]
                for key, value in outs:
                    part = partitioner(key, parts, parts)
                    b = batches.get(part)
                    if b is None:
                        b = batches[part] = p.create_batch()
                    if b.append(key=key, value=value, timestamp=None) is None:
                        futs.append(await p.send_batch(b, args.out, partition=part))
                        b = batches[part] = p.create_batch()
                        b.append(key=key, value=value, timestamp=None)
                for part, b in batches.items():
                    futs.append(await p.send_batch(b, args.out, partition=part))
                await asyncio.gather(*futs)
                state["out"] += len(outs)
            state["n"] += len(events)
            if state["n"] >= args.total and not state["done"]:
                state["done"] = True
                took = time.monotonic() - state["t0"]
                res = {"mode": args.mode, "inputs": state["n"], "outputs": state["out"],
                       "seconds": round(took, 3),
                       "events_per_s": round(state["n"] / took, 1) if took else None,
                       "cpu_s": round(_cpu() - state["cpu0"], 3)}
                with open(args.result, "w") as f:
                    f.write(orjson.dumps(res).decode())
                if "p" in producer:
                    await producer["p"].stop()
                os.kill(os.getpid(), signal.SIGTERM)

    logging.basicConfig(level=logging.WARNING)
    worker = Worker(app, loglevel="WARNING", logfile=None, quiet=True,
                    redirect_stdouts=False, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
