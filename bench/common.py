"""What the benchmarks share: a broker (a local KRaft node on 127.0.0.1, or the cluster named by
STREAMPROC_BENCH_BOOTSTRAP_SERVERS), topics under a fresh prefix (internal and sink topics
stamped with the broker's LogAppendTime), worker processes, fast produce/read helpers, CPU and
RSS readings from /proc, percentiles and the JSON result files in bench/results/."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamproc.config.topics import reconcile
from streamproc.config.topology import Topology, load_topology
from streamproc.dev.localkafka import LocalKafka, free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", ROOT / "bench" / "results"))
TOPICS_FILE = ROOT / "topics.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DESTS = ("mailmodo", "segment", "clevertap", "mailjet")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(float(v)) if v else default


# ------------------------------------------------------------------------------ broker


_LIVE_WORKERS: list[Worker] = []


def _stop_live_workers() -> None:
    for w in list(_LIVE_WORKERS):
        if w.proc is not None and w.proc.poll() is None:
            with contextlib.suppress(Exception):
                os.killpg(w.proc.pid, signal.SIGKILL)


atexit.register(_stop_live_workers)


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: workers and the broker are stopped on the way


BROKER_PID_ENV = "STREAMPROC_BENCH_BROKER_PID"  # set by python -m bench for the shared broker


class Broker:
    """The broker of one benchmark run: an external one (STREAMPROC_BENCH_BOOTSTRAP_SERVERS)
    or a LocalKafka started here (and stopped and deleted on exit, also on SIGTERM)."""

    def __init__(self) -> None:
        self.kafka: LocalKafka | None = None
        self.bootstrap = os.environ.get("STREAMPROC_BENCH_BOOTSTRAP_SERVERS", "")

    def __enter__(self) -> Broker:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _sigterm)
        if not self.bootstrap:
            log("starting a local Kafka broker (127.0.0.1) ...")
            self.kafka = LocalKafka(heap=os.environ.get("STREAMPROC_KAFKA_HEAP", "1g")).start()
            self.bootstrap = self.kafka.bootstrap
            log(f"broker ready on {self.bootstrap}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kafka is not None:
            self.kafka.cleanup()

    def pid(self) -> int | None:
        """The local broker's pid: the one started here, or the shared one of python -m bench
        (None for an external cluster)."""
        if self.kafka and self.kafka.proc:
            return self.kafka.proc.pid
        pid = os.environ.get(BROKER_PID_ENV, "")
        return int(pid) if pid.isdigit() else None


def _stamped(t: Any) -> Any:
    return dataclasses.replace(t, config={**t.config, "message.timestamp.type": "LogAppendTime"})


def bench_topology(prefix: str) -> Topology:
    """topics.yaml under `prefix`; internal and sink topics carry broker append times."""
    topo = load_topology(TOPICS_FILE).with_prefix(prefix)
    return dataclasses.replace(
        topo,
        internal={k: _stamped(v) for k, v in topo.internal.items()},
        destinations={k: dataclasses.replace(d, sink=_stamped(d.sink))
                      for k, d in topo.destinations.items()},
    )


def create_topics(bootstrap: str, prefix: str) -> Topology:
    topo = bench_topology(prefix)
    report = asyncio.run(reconcile(topo, {"bootstrap_servers": bootstrap}, create=True))
    if not report.healthy:
        raise RuntimeError("creating topics failed: " + "; ".join(report.lines()))
    return topo


def new_prefix(tag: str) -> str:
    return f"b{tag}{uuid.uuid4().hex[:6]}."


# ------------------------------------------------------------------------------ /proc


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (seconds), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def du_bytes(path: str | Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_1m_at_start": round(load[0], 2)}


# ------------------------------------------------------------------------------ worker


def worker_env(bootstrap: str, prefix: str, app_id: str, data_dir: str, web_port: int,
               client_id: str, delivery: bool = False, extra: dict[str, str] | None = None,
               ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update({
        "STREAMPROC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMPROC_TOPIC_PREFIX": prefix,
        "STREAMPROC_TOPICS_FILE": str(TOPICS_FILE),
        "STREAMPROC_APP_ID": app_id,
        "STREAMPROC_CLIENT_ID": client_id,
        "STREAMPROC_DATA_DIR": data_dir,
        "STREAMPROC_WEB_PORT": str(web_port),
        "STREAMPROC_LOG_LEVEL": os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
        "PYTHONUNBUFFERED": "1",
        "BENCH_DELIVERY": "on" if delivery else "off",
    })
    if not delivery:
        # Credentials are required for enabled destinations; the delivery agents are not
        # registered (bench.worker), so these sandbox values are never used.
        from streamproc.dev.sandbox import sandbox_env

        env.update(sandbox_env({d: "http://127.0.0.1:9" for d in DESTS}))
    env.update(extra or {})
    return env


@dataclasses.dataclass
class Worker:
    """One `python -m bench.worker` process (= `python -m streamproc worker`, by default
    without the delivery agents; see bench/worker.py)."""

    bootstrap: str
    prefix: str
    app_id: str
    name: str = "w1"
    data_dir: str | None = None
    delivery: bool = False
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    root: Path = dataclasses.field(default_factory=lambda: Path(tempfile.gettempdir()))
    proc: subprocess.Popen | None = None
    web_port: int = 0
    started_at: float = 0.0
    log_path: Path | None = None
    src: Path | None = None  # another checkout's streamproc and bench (A/B), else this one

    def start(self) -> Worker:
        if self.data_dir is None:
            self.data_dir = tempfile.mkdtemp(prefix=f"{self.name}-data-", dir=self.root)
        os.makedirs(self.data_dir, exist_ok=True)
        self.web_port = free_port()
        self.log_path = self.root / f"{self.name}-{int(time.time() * 1000)}.log"
        env = worker_env(self.bootstrap, self.prefix, self.app_id, self.data_dir, self.web_port,
                         f"{self.app_id}-{self.name}", self.delivery, self.extra_env)
        if self.src is not None:
            env["PYTHONPATH"] = str(self.src)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.worker"], env=env,
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     cwd=str(self.src or ROOT), start_new_session=True)
        _LIVE_WORKERS.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def ready(self) -> tuple[bool, str]:
        try:
            r = httpx.get(self.url + "/ready", timeout=2)
            return r.status_code == 200, r.json().get("detail", "")
        except (httpx.HTTPError, ValueError):
            return False, "no answer"

    def wait_ready(self, timeout: float = 180.0, interval: float = 0.1) -> float:
        """Seconds from process start until /ready answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready()[0]:
                return time.monotonic() - self.started_at
            time.sleep(interval)
        raise TimeoutError(f"worker {self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}")

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.proc else None

    def rss_kb(self) -> int | None:
        return proc_status_kb(self.pid, "VmRSS") if self.proc else None

    def hwm_kb(self) -> int | None:
        return proc_status_kb(self.pid, "VmHWM") if self.proc else None

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait; returns the seconds it took (SIGKILL after `timeout`)."""
        if self.proc is None:
            return 0.0
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"worker {self.name} did not stop within {timeout:.0f}s: SIGKILL")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if self in _LIVE_WORKERS:
            _LIVE_WORKERS.remove(self)
        return time.monotonic() - t

    def log_tail(self, n: int = 40) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "(no log)"


def metric_values(text: str, name: str) -> dict[str, float]:
    """{label string: value} of one metric in a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name):
            rest = line[len(name):]
            if rest[:1] in ("{", " "):
                labels, _, value = rest.rpartition(" ")
                out[labels.strip()] = float(value)
    return out


# ------------------------------------------------------------------------------ produce


async def _produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                         max_batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    await p.start()
    n = 0
    try:
        futs = []
        for topic, key, value in records:
            futs.append(await p.send(topic, value=value, key=key))
            n += 1
            if len(futs) >= 20000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    return n


def produce(bootstrap: str, topo: Topology, raws: Iterable[Any]) -> float:
    """Produce generated records (a list or a generator) to their raw topics; returns
    records/s."""
    t = time.monotonic()
    n = asyncio.run(_produce(bootstrap, ((topo.inputs[r.input].name, r.key, r.value)
                                         for r in raws)))
    return n / max(1e-9, time.monotonic() - t)


async def produce_at_rate(bootstrap: str, topo: Topology, raws: list[Any], rate: float,
                          tick: float = 0.005) -> dict[str, float]:
    """Produce `raws` at `rate` records/s (small linger: the input timestamps are send times)."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await p.start()
    futs = []
    t0 = time.monotonic()
    i = 0
    try:
        while i < len(raws):
            due = min(len(raws), int((time.monotonic() - t0) * rate) + 1)
            while i < due:
                r = raws[i]
                futs.append(await p.send(topo.inputs[r.input].name, value=r.value, key=r.key))
                i += 1
            await asyncio.sleep(tick)
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    took = time.monotonic() - t0
    return {"sent": len(raws), "seconds": round(took, 2), "rate": round(len(raws) / took, 1)}


# ------------------------------------------------------------------------------ offsets


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        tps = []
        for t in topics:
            parts = c.partitions_for_topic(t)
            if not parts:
                await c._client.force_metadata_update()  # noqa: SLF001
                parts = c.partitions_for_topic(t) or set()
            tps += [TopicPartition(t, p) for p in parts]
        ends = await c.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await c.stop()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    return asyncio.run(_end_offsets(bootstrap, topics))


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, prefix: str) -> list[str]:
    async with _admin(bootstrap) as admin:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if not names:
            return []
        resp = await admin.delete_topics(names, timeout_ms=60_000)
        failed = [(t, code) for t, code, *_ in resp.topic_error_codes if code]
        if failed:  # e.g. delete.topic.enable=false on an external cluster
            raise RuntimeError(f"deleting the burst's topics failed: {failed}")
        return names


def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a burst's raw, internal, sink and
    outcome topics, and its app's changelogs), so that the bursts of an A/B run beside no
    earlier burst's topics (kept, the broker worked for them during the later ones: its log
    cleaner compacting their changelogs). The broker removes the files a minute later
    (file.delete.delay.ms), and the burst's consumer group stays."""
    return asyncio.run(_delete_topics(bootstrap, prefix))


async def _group_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    async with _admin(bootstrap) as admin:
        got = await admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()}


@dataclasses.dataclass(frozen=True)
class ProcCpu:
    """Any process by pid, for a CpuSampler (the broker, the benchmark process itself)."""

    pid: int

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.pid)


class CpuSampler:
    """Samples the summed CPU time of some workers every `interval` s in a thread, so the CPU
    a run spent between two wall-clock times can be read afterwards (robust to a busy host:
    CPU-seconds per event do not depend on what else runs)."""

    def __init__(self, workers: list[Worker], interval: float = 0.25) -> None:
        self.workers = workers
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (unix time, cpu seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        cpu = [w.cpu() for w in self.workers]
        if cpu and all(c is not None for c in cpu):
            self.samples.append((time.time(), sum(cpu)))  # type: ignore[arg-type]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def between(self, t0: float, t1: float) -> float | None:
        """CPU seconds spent between unix times t0 and t1 (interpolated)."""
        s = list(self.samples)
        if len(s) < 2:
            return None

        def at(t: float) -> float:
            if t <= s[0][0]:
                return s[0][1]
            for (ta, ca), (tb, cb) in zip(s, s[1:]):
                if ta <= t <= tb:
                    return ca + (cb - ca) * (t - ta) / max(1e-9, tb - ta)
            return s[-1][1]

        return round(max(0.0, at(t1) - at(t0)), 3)


def finished(behind: int, sink_total: int, sinks_min: int) -> bool:
    """A run is done when every source record is committed and the sinks hold at least
    `sinks_min` records. Not when they hold `sinks_max` (the generator's estimate of the most
    a burst can produce), as before 16148fd: a complete 300k burst produced 325,702 sink
    records against an estimate of 319,515, so bursts, on either side of an A/B, were stopped
    with their last records still being routed (a shorter window, fewer calls)."""
    return behind == 0 and sink_total >= sinks_min


class Progress:
    """Polls a run: end offsets of the source and sink topics and the group's committed
    offsets. Done when every source partition (raw + internal) is committed up to its end
    and the sinks hold at least `sinks_min` records (finished)."""

    def __init__(self, bootstrap: str, topo: Topology, group: str, sinks_min: int,
                 sinks_max: int, workers: list[Worker]) -> None:
        self.bootstrap, self.topo, self.group = bootstrap, topo, group
        self.sinks_min, self.sinks_max = sinks_min, sinks_max
        self.workers = workers
        self.sources = [t.name for t in topo.inputs.values()] + [
            topo.internal["by_user"].name, topo.internal["by_contact"].name]
        self.sinks = [d.sink.name for d in topo.destinations.values()]

    async def _poll(self) -> tuple[bool, int, int]:
        ends = await _end_offsets(self.bootstrap, self.sources + self.sinks)
        committed = await _group_offsets(self.bootstrap, self.group)
        sink_total = sum(v for (t, _), v in ends.items() if t in self.sinks)
        behind = sum(max(0, v - committed.get(tp, 0)) for tp, v in ends.items()
                     if tp[0] in self.sources)
        return finished(behind, sink_total, self.sinks_min), sink_total, behind

    def wait(self, timeout: float, interval: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last_log = time.monotonic()
        sink_total = behind = 0
        while time.monotonic() < deadline:
            for w in self.workers:
                w.check_alive()
            done, sink_total, behind = asyncio.run(self._poll())
            if time.monotonic() - last_log > 10:
                log(f"  sinks {sink_total} (expect {self.sinks_min}..{self.sinks_max}), "
                    f"uncommitted source records {behind}")
                last_log = time.monotonic()
            if done:
                return {"timed_out": False, "sink_records": sink_total}
            time.sleep(interval)
        log(f"  TIMED OUT after {timeout:.0f}s: sinks {sink_total}, uncommitted {behind}")
        return {"timed_out": True, "sink_records": sink_total, "uncommitted": behind}


# ------------------------------------------------------------------------------ read


@dataclasses.dataclass(slots=True)
class Rec:
    topic: str
    ts: int  # ms
    key: bytes | None
    value: bytes


async def _read(bootstrap: str, topics: list[str], with_values: bool) -> list[Rec]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         auto_offset_reset="earliest", group_id=None,
                         max_partition_fetch_bytes=8 * 1024 * 1024,
                         fetch_max_bytes=64 * 1024 * 1024)
    await c.start()
    out: list[Rec] = []
    try:
        tps = []
        for t in topics:
            parts = c.partitions_for_topic(t)
            if not parts:
                await c._client.force_metadata_update()  # noqa: SLF001
                parts = c.partitions_for_topic(t) or set()
            tps += [TopicPartition(t, p) for p in sorted(parts)]
        ends = await c.end_offsets(tps)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        pos = {tp: 0 for tp in tps}
        left = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 600
        while left and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=500, max_records=50000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(Rec(tp.topic, m.timestamp, m.key, m.value if with_values else b""))
                if msgs:
                    pos[tp] = msgs[-1].offset + 1
                    if pos[tp] >= ends[tp]:
                        left.discard(tp)
        return out
    finally:
        await c.stop()


def read_topics(bootstrap: str, topics: list[str], with_values: bool = True) -> list[Rec]:
    """Every record on `topics` up to their current end offsets."""
    return asyncio.run(_read(bootstrap, topics, with_values))


# ------------------------------------------------------------------------------ figures


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def latency_summary(values_ms: list[float]) -> dict[str, Any]:
    return {"count": len(values_ms),
            "p50_ms": _r(percentile(values_ms, 50)), "p90_ms": _r(percentile(values_ms, 90)),
            "p99_ms": _r(percentile(values_ms, 99)), "max_ms": _r(max(values_ms) if values_ms else None)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def write_result(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": machine(), **doc}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


class Workdir:
    """A temporary folder for worker data and logs; kept when BENCH_KEEP=1."""

    def __init__(self, tag: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"streamproc-bench-{tag}-"))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if os.environ.get("BENCH_KEEP") == "1" or exc[0] is not None:
            log(f"kept {self.path} (logs)")
        else:
            shutil.rmtree(self.path, ignore_errors=True)
