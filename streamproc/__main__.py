"""The `streamproc` command: worker, dev (local broker + worker on embedded defaults), topics,
send, dlq, replay, kafka. Every command reads settings from the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Sequence

from streamproc.core.errors import ConfigError


def _load(args: argparse.Namespace):
    from streamproc.config.settings import load_settings
    from streamproc.config.topology import load_topology

    settings = load_settings()
    topology = load_topology(getattr(args, "topics_file", None) or settings.topics_file)
    if settings.topic_prefix:
        topology = topology.with_prefix(settings.topic_prefix)
    return settings, topology


def cmd_worker(args: argparse.Namespace) -> int:
    from streamproc.app.run import run_worker

    settings, topology = _load(args)
    return run_worker(settings, topology)


def cmd_dev(args: argparse.Namespace) -> int:
    from streamproc.dev.command import run_dev

    return run_dev(args)


def cmd_topics(args: argparse.Namespace) -> int:
    from streamproc.config.kafka import client_kwargs
    from streamproc.config.topics import reconcile

    settings, topology = _load(args)
    report = asyncio.run(reconcile(topology, client_kwargs(settings.kafka),
                                   create=args.action == "apply", kafka=settings.kafka))
    for line in report.lines():
        print(line)
    if not report.healthy:
        print(f"topics: {len(report.missing)} missing, {len(report.mismatched)} mismatched "
              f"(see above)", file=sys.stderr)
        return 1
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    """`kafka start`: a broker on a free port (or --port) that never outlives this command
    (Linux: PR_SET_PDEATHSIG, so even a SIGKILL of the command takes the broker with it);
    ready = the stdout line and --ready-file's JSON. SIGINT/SIGTERM stop it cleanly."""
    import signal
    import threading
    from pathlib import Path

    from streamproc.dev.localkafka import (LocalKafka, LocalKafkaError, ensure_jars,
                                           write_ready_file)

    if args.action == "fetch":
        print(ensure_jars(quiet=False))
        return 0
    data = Path(os.path.abspath(args.data_dir)) if args.data_dir else None
    ready = Path(os.path.abspath(args.ready_file)) if args.ready_file else None
    if ready is not None:
        ready.unlink(missing_ok=True)  # a file left by an earlier run must not read as ready
    # started from this (the main) thread: the kernel kills the broker when it exits
    kafka = LocalKafka(port=args.port or 0, data_dir=data, die_with_parent=True)
    if args.secure:
        from streamproc.dev.localkafka_secure import Secure

        kafka.secure = Secure()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # while starting: stop what was started
    try:
        try:
            kafka.start()
        except KeyboardInterrupt:
            print("interrupted before the broker was ready", file=sys.stderr)
            return 1
        except LocalKafkaError as e:
            print(f"streamproc kafka start: {e}", file=sys.stderr)
            return 1
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if ready is not None:
            write_ready_file(ready, kafka.ready_info())
        how = " (SASL_SSL, SCRAM-SHA-512: users in --ready-file)" if args.secure else ""
        print(f"Kafka {kafka.version} ready on {kafka.bootstrap}{how} (Ctrl-C stops it)", flush=True)
        while not stop.wait(1.0):
            if kafka.proc is None or kafka.proc.poll() is not None:
                print("the broker exited", file=sys.stderr)
                return 1
    finally:
        if ready is not None:
            ready.unlink(missing_ok=True)
        kafka.cleanup()  # stops the broker; deletes its data unless --data-dir
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from streamproc.dev.samples import send_samples

    settings, topology = _load(args)
    counts = asyncio.run(send_samples(settings, topology, args.file))
    for topic, n in counts.items():
        print(f"sent {n:6d} records to {topic}")
    return 0


def _operator(run, args: argparse.Namespace) -> int:
    """Run an operator command; an authorization error names the permission it lacks."""
    from aiokafka.errors import KafkaError

    from streamproc.config.kafka_access import AccessDenied, explain

    settings, topology = _load(args)
    try:
        return asyncio.run(run(settings, topology, args))
    except KafkaError as e:
        why = explain(e, settings.kafka, topology, settings.app_id, "operator")
        if why is None:
            raise
        raise AccessDenied(why) from None


def cmd_dlq(args: argparse.Namespace) -> int:
    from streamproc.ops.dlq.command import run_dlq_command

    return _operator(run_dlq_command, args)


def cmd_replay(args: argparse.Namespace) -> int:
    from streamproc.ops.replay.command import run_replay_command

    return _operator(run_replay_command, args)


def cmd_wait(args: argparse.Namespace) -> int:
    from streamproc.ops.caught_up import run_wait_command

    return _operator(run_wait_command, args)


def cmd_acls(args: argparse.Namespace) -> int:
    from streamproc.config.acls import run_acls_command

    settings, topology = _load(args)
    return run_acls_command(topology, settings.app_id, args)


def cmd_trace(args: argparse.Namespace) -> int:
    from streamproc.ops.trace import run_trace_command

    settings, topology = _load(args)
    return asyncio.run(run_trace_command(settings, topology, args))


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
    k.add_argument("--port", type=int, default=0,
                   help="broker port on 127.0.0.1 (default: a free one; see --ready-file)")
    k.add_argument("--data-dir", help="keep broker data here (default: a temporary folder)")
    k.add_argument("--ready-file", metavar="PATH",
                   help="once the broker accepts connections, write {bootstrap, pid, version} "
                        "as JSON here (atomically); removed again at a clean stop")
    k.add_argument("--secure", action="store_true",
                   help="SASL_SSL with SCRAM-SHA-512 users, a throwaway CA and ACLs enforced "
                        "(--ready-file then also has the CA file and each user's password)")
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
    from streamproc.ops.trace import add_parser as add_trace_parser
    add_trace_parser(sub, cmd_trace)
    a = sub.add_parser("acls", help="the Kafka ACLs each role needs (worker, topics admin, "
                                    "operator CLI) for topics.yaml, the app id and topic prefix")
    a.add_argument("--format", choices=["table", "commands", "json"], default="commands")
    for role in ("worker", "topics", "operator"):
        a.add_argument(f"--principal-{role}", metavar="User:NAME",
                       help=f"the {role} role's principal (default: User:streamproc-{role})")
    a.set_defaults(func=cmd_acls)
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
