"""The `streamproc` command: worker, dev (local broker + worker on embedded defaults), topics,
send, dlq, replay, kafka. Every command reads settings from the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Sequence

from streamproc.errors import ConfigError


def _load(args: argparse.Namespace):
    from streamproc.settings import load_settings
    from streamproc.topology import load_topology

    settings = load_settings()
    topology = load_topology(getattr(args, "topics_file", None) or settings.topics_file)
    if settings.topic_prefix:
        topology = topology.with_prefix(settings.topic_prefix)
    return settings, topology


def cmd_worker(args: argparse.Namespace) -> int:
    from streamproc.worker import run_worker

    settings, topology = _load(args)
    return run_worker(settings, topology)


def cmd_dev(args: argparse.Namespace) -> int:
    from streamproc.dev import run_dev

    return run_dev(args)


def cmd_topics(args: argparse.Namespace) -> int:
    from streamproc.kafka import client_kwargs
    from streamproc.topics import reconcile

    settings, topology = _load(args)
    report = asyncio.run(reconcile(topology, client_kwargs(settings.kafka),
                                   create=args.action == "apply"))
    for line in report.lines():
        print(line)
    if not report.healthy:
        print(f"topics: {len(report.missing)} missing, {len(report.mismatched)} mismatched "
              f"(see above)", file=sys.stderr)
        return 1
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    import signal
    import threading

    from streamproc.localkafka import LocalKafka, ensure_jars

    if args.action == "fetch":
        print(ensure_jars(quiet=False))
        return 0
    data = os.path.abspath(args.data_dir) if args.data_dir else None
    from pathlib import Path

    kafka = LocalKafka(port=args.port, data_dir=Path(data) if data else None)
    kafka.start()
    print(f"Kafka {kafka.version} ready on {kafka.bootstrap} (Ctrl-C stops it)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if kafka.proc is None or kafka.proc.poll() is not None:
                print("the broker exited", file=sys.stderr)
                return 1
    finally:
        kafka.cleanup() if not data else kafka.stop()
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from streamproc.samples import send_samples

    settings, topology = _load(args)
    counts = asyncio.run(send_samples(settings, topology, args.file))
    for topic, n in counts.items():
        print(f"sent {n:6d} records to {topic}")
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from streamproc.dlq import run_dlq_command

    settings, topology = _load(args)
    return asyncio.run(run_dlq_command(settings, topology, args))


def cmd_replay(args: argparse.Namespace) -> int:
    from streamproc.replay import run_replay_command

    settings, topology = _load(args)
    return asyncio.run(run_replay_command(settings, topology, args))


def cmd_wait(args: argparse.Namespace) -> int:
    from streamproc.caught_up import run_wait_command

    settings, topology = _load(args)
    return asyncio.run(run_wait_command(settings, topology, args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamproc", description=__doc__)
    p.add_argument("--topics-file", help="topics.yaml to use (default: STREAMPROC_TOPICS_FILE)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a worker (joins the consumer group)").set_defaults(func=cmd_worker)

    d = sub.add_parser("dev", help="local broker + topics + worker (+ sandbox APIs and demo)")
    d.add_argument("--no-demo", action="store_true", help="do not produce the sample events")
    d.add_argument("--exit-after-demo", action="store_true",
                   help="stop after the demo summary (used by tests)")
    d.set_defaults(func=cmd_dev)

    t = sub.add_parser("topics", help="create (apply) or verify (check) the topics in topics.yaml")
    t.add_argument("action", choices=["apply", "check"])
    t.set_defaults(func=cmd_topics)

    k = sub.add_parser("kafka", help="the local development broker")
    k.add_argument("action", choices=["start", "fetch"])
    k.add_argument("--port", type=int, default=9092)
    k.add_argument("--data-dir", help="keep broker data here (default: a temporary folder)")
    k.set_defaults(func=cmd_kafka)

    s = sub.add_parser("send", help="produce the bundled sample events (or a JSONL file)")
    s.add_argument("--file", help="JSONL of {topic: input name, key, value}")
    s.set_defaults(func=cmd_send)

    q = sub.add_parser("dlq", help="list or re-drive dead-lettered records")
    q.add_argument("action", choices=["list", "redrive"])
    q.add_argument("--destination", help="mailmodo|segment|clevertap|mailjet|ingest")
    q.add_argument("--reason", help="only records with this reason code")
    q.add_argument("--since", help="ISO-8601 or unix seconds")
    q.add_argument("--until", help="ISO-8601 or unix seconds")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(func=cmd_dlq)

    r = sub.add_parser("replay", help="re-process a raw or sink topic from an offset or time")
    r.add_argument("source", help="input name (segment, mailmodo, mailjet, clevertap) or sink.<dest>")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--from-offset", type=int)
    g.add_argument("--from-time", help="ISO-8601 or unix seconds")
    r.add_argument("--to-time", help="ISO-8601 or unix seconds (default: now)")
    r.add_argument("--destination", help="only re-send to this destination")
    r.add_argument("--force", action="store_true", help="re-send even what the ledger saw")
    r.add_argument("--dry-run", action="store_true", help="report what would be re-sent")
    r.set_defaults(func=cmd_replay)

    w = sub.add_parser("wait", help="wait until the worker group caught up (exit 0; 1: timeout)")
    w.add_argument("--caught-up", action="store_true", required=True,
                   help="every input, internal and sink topic processed up to its end offset")
    w.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up after this long (default: 300; 0: check once)")
    w.add_argument("--json", action="store_true", help="print the result as one JSON object")
    w.set_defaults(func=cmd_wait)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ConfigError as e:
        print(f"streamproc: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
