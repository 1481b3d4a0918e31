"""Integration-test harness: real worker processes (`python -m streamproc worker`) on the
session's real broker, each test isolated by its own topic prefix and consumer group, plus
produce/consume helpers over aiokafka."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamproc.config.topics import reconcile
from streamproc.config.topology import Topology, load_topology
from streamproc.dev.localkafka import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def topology_for(prefix: str, path: str | Path = ROOT / "topics.yaml") -> Topology:
    return load_topology(path).with_prefix(prefix)


def apply_topics(bootstrap: str, topology: Topology) -> None:
    report = asyncio.run(reconcile(topology, {"bootstrap_servers": bootstrap}, create=True))
    assert report.healthy, report.lines()


@dataclass
class WorkerProcess:
    bootstrap: str
    prefix: str
    env_extra: dict[str, str] = field(default_factory=dict)
    app_id: str | None = None
    data_dir: str | None = None
    web_port: int = 0
    name: str = "w1"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
        env.update({
            "STREAMPROC_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMPROC_TOPIC_PREFIX": self.prefix,
            "STREAMPROC_TOPICS_FILE": str(ROOT / "topics.yaml"),
            "STREAMPROC_APP_ID": self.app_id,
            "STREAMPROC_CLIENT_ID": f"{self.app_id}-{self.name}",
            "STREAMPROC_DATA_DIR": self.data_dir,
            "STREAMPROC_WEB_PORT": str(self.web_port),
            "STREAMPROC_LOG_LEVEL": "INFO",
            # tests decide at once unless they test holds (test_same_calls.py sets its own)
            "STREAMPROC_HOLD_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.env_extra)
        return env

    def start(self) -> WorkerProcess:
        self.app_id = self.app_id or f"{self.prefix}app"
        if self.data_dir is None:
            self.data_dir = tempfile.mkdtemp(prefix=f"streamproc-{self.name}-")
        self.web_port = self.web_port or free_port()
        self.log_path = Path(self.data_dir).parent / f"{Path(self.data_dir).name}.{self.name}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streamproc", "worker"], env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                     start_new_session=True)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log_tail()}")
            try:
                r = httpx.get(self.url + "/ready", timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker {self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if not terminate(self.proc, timeout):
            raise AssertionError(f"worker {self.name} did not stop on SIGTERM within "
                                 f"{timeout}s:\n{self.log_tail()}")
        code = self.proc.returncode
        self.proc = None
        return code

    def stop_or_kill(self, timeout: float = 30.0) -> None:
        """Stop a still running worker at the end of a test; kill it if it does not stop."""
        if self.proc is not None:
            try:
                self.stop(timeout=timeout)
            except AssertionError:
                self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def log_tail(self, n: int = 80) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "(no log)"


def produce(bootstrap: str, topic: str, items: Iterable[tuple[bytes | str | None, Any]],
            **client: Any) -> None:
    """Produce (key, value) pairs; dict/list values are JSON-encoded, bytes sent as they are.
    `client`: more aiokafka arguments (a secured broker's security settings)."""

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client)
        await p.start()
        try:
            futs = []
            for key, value in items:
                k = key.encode() if isinstance(key, str) else key
                v = value if isinstance(value, bytes) else orjson.dumps(value)
                futs.append(await p.send(topic, value=v, key=k))
            await asyncio.gather(*futs)
        finally:
            await p.stop()

    asyncio.run(run())


@dataclass
class Consumed:
    key: bytes | None
    value: bytes
    partition: int
    offset: int
    timestamp: int

    def json(self) -> Any:
        return orjson.loads(self.value)


def read_topic(bootstrap: str, topic: str, *, min_count: int = 0, timeout: float = 30.0,
               settle: float = 1.0, **client: Any) -> list[Consumed]:
    """Everything on a topic from the beginning: waits until at least min_count records are
    there, then `settle` seconds more with nothing new (to catch unexpected extras).
    `client`: more aiokafka arguments (a secured broker's security settings)."""

    async def run() -> list[Consumed]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", group_id=None, **client)
        await c.start()
        try:
            parts = c.partitions_for_topic(topic)
            deadline = time.monotonic() + 10
            while not parts and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                await c._client.force_metadata_update()
                parts = c.partitions_for_topic(topic)
            assert parts, f"topic {topic} does not exist"
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            out: list[Consumed] = []
            deadline = time.monotonic() + timeout
            quiet_since = time.monotonic()
            while time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=200)
                got = False
                for tp, msgs in batch.items():
                    for m in msgs:
                        out.append(Consumed(m.key, m.value, tp.partition, m.offset, m.timestamp))
                        got = True
                if got:
                    quiet_since = time.monotonic()
                elif len(out) >= min_count and time.monotonic() - quiet_since >= settle:
                    break
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete a test's topics (inputs, internal, sinks, changelogs): the session broker is
    shared by the whole suite, and thousands of idle partitions weigh on it."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    try:
        asyncio.run(run())
    except Exception as e:  # cleanup only: never fail a test for it
        print(f"deleting the topics of {prefix} failed: {e!r}")


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """{partition: committed offset} of `group` on `topic`."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    return asyncio.run(run())


def counter_value(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the Prometheus samples of `name` whose labels include `labels`."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextmanager
def sandboxed_worker(bootstrap: str, name: str, env: dict[str, str] | None = None, *,
                     ready_timeout: float = 90.0) -> Iterator[tuple[Any, Topology, WorkerProcess]]:
    """A worker on fresh prefixed topics delivering to its own sandbox APIs, ready: yields
    (sandbox, topology, worker); stops the worker (killed if it will not stop), then the APIs."""
    from streamproc.dev.sandbox import SandboxServer, sandbox_env

    with SandboxServer() as sandbox:
        prefix = unique_prefix()
        topology = topology_for(prefix)
        apply_topics(bootstrap, topology)
        w = WorkerProcess(bootstrap, prefix, name=name,
                          env_extra={**sandbox_env(sandbox.base_urls), **(env or {})}).start()
        try:
            w.wait_ready(timeout=ready_timeout)
            yield sandbox, topology, w
        finally:
            w.stop_or_kill()
