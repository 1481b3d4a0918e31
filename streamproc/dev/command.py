"""`streamproc dev`: everything on embedded defaults. Starts a local broker (unless one is
configured), applies topics.yaml, starts sandbox APIs for destinations without credentials,
runs a worker, produces the sample events and prints a summary. Ctrl-C/SIGTERM stops all."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from streamproc.dev.localkafka import LocalKafka, free_port, terminate


def _log(msg: str) -> None:
    print(f"[dev] {msg}", file=sys.stderr, flush=True)


def run_dev(args: argparse.Namespace) -> int:
    from streamproc.config.kafka import client_kwargs
    from streamproc.config.settings import load_settings
    from streamproc.config.topics import reconcile
    from streamproc.config.topology import load_topology

    env = dict(os.environ)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kafka: LocalKafka | None = None
    sandbox = None
    worker: subprocess.Popen | None = None
    try:
        if not env.get("STREAMPROC_KAFKA_BOOTSTRAP_SERVERS"):
            data = Path(env.get("STREAMPROC_DATA_DIR", ".streamproc/data")).resolve().parent / "kafka"
            kafka = LocalKafka(data_dir=data, die_with_parent=True)  # never outlives dev
            _log(f"starting local Kafka {kafka.version} ...")
            kafka.start()
            env["STREAMPROC_KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
            _log(f"Kafka ready on {kafka.bootstrap} (data in {data})")
        sandbox_env, sandbox = _sandbox_for_missing_credentials(env)
        env.update(sandbox_env)
        env.setdefault("STREAMPROC_WEB_PORT", str(free_port()))
        env.setdefault("STREAMPROC_INGEST_WEBHOOK_TOKEN", "dev-token")
        env.setdefault("STREAMPROC_INGEST_SEGMENT_WRITE_KEYS", "dev-write-key")
        os.environ.update(env)
        settings = load_settings()
        topology = load_topology(settings.topics_file)
        if settings.topic_prefix:
            topology = topology.with_prefix(settings.topic_prefix)
        report = asyncio.run(reconcile(topology, client_kwargs(settings.kafka), create=True))
        _log(f"topics: {len(report.created)} created, {len(report.ok)} already there")
        if not report.healthy:
            for line in report.lines():
                _log(line)
            return 1
        worker = subprocess.Popen([sys.executable, "-m", "streamproc", "worker"], env=env)
        url = f"http://{settings.web_host}:{settings.web_port}"
        if not _wait_ready(url, worker, stop):
            return 1
        _log(f"worker ready: status page {url}/status, metrics {url}/metrics")
        if not args.no_demo:
            from streamproc.dev.demo import run_demo

            run_demo(settings, topology, url, sandbox)
            if args.exit_after_demo:
                return 0
        _log("running; Ctrl-C stops the worker" + (" and the broker" if kafka else ""))
        while not stop.wait(0.5):
            if worker.poll() is not None:
                _log(f"the worker exited with code {worker.returncode}")
                return worker.returncode or 1
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            _log("stopping the worker ...")
            terminate(worker, 60)
        if sandbox is not None:
            sandbox.stop()
        if kafka is not None:
            _log("stopping Kafka ...")
            kafka.stop()
        _log("stopped")


def _wait_ready(url: str, worker: subprocess.Popen, stop: threading.Event,
                timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if worker.poll() is not None:
            _log(f"the worker exited with code {worker.returncode} before it was ready")
            return False
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    if not stop.is_set():
        _log(f"the worker was not ready within {timeout:.0f}s")
    return False


def _sandbox_for_missing_credentials(env: dict[str, str]):
    """Local sandbox APIs (and their credentials) for every destination whose credentials
    are not in the environment; real credentials mean real APIs."""
    wanted = {
        "mailmodo": ["STREAMPROC_MAILMODO_API_KEY"],
        "segment": ["STREAMPROC_SEGMENT_WRITE_KEY"],
        "clevertap": ["STREAMPROC_CLEVERTAP_ACCOUNT_ID", "STREAMPROC_CLEVERTAP_PASSCODE"],
        "mailjet": ["STREAMPROC_MAILJET_API_KEY", "STREAMPROC_MAILJET_API_SECRET"],
    }
    missing = [d for d, vars_ in wanted.items() if not all(env.get(v) for v in vars_)]
    if not missing:
        return {}, None
    from streamproc.dev.sandbox import start_sandbox

    sandbox, out_env = start_sandbox(missing)
    _log("sandbox APIs for " + ", ".join(missing) + " (no credentials in the environment)")
    return out_env, sandbox
