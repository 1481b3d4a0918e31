"""A local single-node Apache Kafka (KRaft, broker+controller) for development and tests,
provisioned from Maven Central jars with Maven into a cache and started on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from streamproc.dev.localkafka_jars import (KAFKA_VERSION, LocalKafkaError, cache_dir,  # noqa: F401
                                            ensure_jars, kafka_version)

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reserve_ports(n: int, avoid: tuple[int, ...] = ()) -> list[socket.socket]:
    """`n` sockets bound to distinct free ports on 127.0.0.1 (none in `avoid`), held open so
    that nobody else, nor a second call, gets those ports until the caller closes them: close
    them just before the process that binds the ports starts."""
    held: list[socket.socket] = []
    extra: list[socket.socket] = []  # ports in `avoid`, held until the end so they are not redrawn
    try:
        while len(held) < n:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", 0))
            except BaseException:
                s.close()
                raise
            (extra if s.getsockname()[1] in avoid else held).append(s)
            if len(extra) > 100:
                raise LocalKafkaError("no free port on 127.0.0.1")
        return held
    except BaseException:
        for s in held:
            s.close()
        raise
    finally:
        for s in extra:
            s.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A Popen preexec_fn that makes the child get SIGKILL when its parent dies (Linux
    prctl(PR_SET_PDEATHSIG, SIGKILL)); None elsewhere. The kernel sends the signal when the
    *thread* that forked the child exits, so spawn from a thread that lives as long as the
    process (the main thread). libc is looked up here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def write_ready_file(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Write `info` as JSON to `path` atomically: a temporary file in the same folder, flushed
    to disk, then renamed over `path`, so a reader sees no file or the whole of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(info, out)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # --secure writes the throwaway users' passwords into it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class LocalKafka:
    """One KRaft node on 127.0.0.1. `start()` formats storage (first time) and waits until
    the broker answers; `stop()` shuts it down cleanly (SIGTERM, then SIGKILL after 30 s).
    port 0 (the default) takes a free port. die_with_parent: on Linux the broker gets SIGKILL
    when this process dies, even by SIGKILL (start() must then run on the main thread)."""

    port: int = 0
    controller_port: int = 0
    data_dir: Path | None = None
    heap: str = field(default_factory=lambda: os.environ.get("STREAMPROC_KAFKA_HEAP", "512m"))
    version: str = field(default_factory=kafka_version)
    extra: dict[str, str] = field(default_factory=dict)
    die_with_parent: bool = False
    secure: Any = None  # a localkafka_secure.Secure: SASL_SSL, SCRAM users, ACLs enforced
    proc: subprocess.Popen | None = None
    cluster_id: str | None = None  # the one the storage was formatted with (set by start())
    _tmp: tempfile.TemporaryDirectory | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready_info(self) -> dict[str, Any]:
        """What `streamproc kafka start --ready-file` writes: bootstrap, broker pid, version."""
        return {"bootstrap": self.bootstrap, "pid": self.proc.pid if self.proc else None,
                "version": self.version, **(self.secure.ready_info() if self.secure else {})}

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka keyword arguments for this broker (secured: as the super user)."""
        return {"bootstrap_servers": self.bootstrap,
                **(self.secure.client_kwargs() if self.secure else {})}

    def properties(self) -> dict[str, str]:
        assert self.data_dir is not None
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": "60000",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.flush.interval.messages": "9223372036854775807",
        }
        props.update(self.secure.properties(self.port, self.controller_port) if self.secure else {})
        props.update(self.extra)
        return props

    def start(self, timeout: float = 90.0) -> LocalKafka:
        if self.die_with_parent and threading.current_thread() is not threading.main_thread():
            raise LocalKafkaError("die_with_parent: start the broker from the main thread (the "
                                  "kernel kills it when the thread that started it exits)")
        libs = ensure_jars(self.version)
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="streamproc-kafka-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port and port_open(self.port):
            raise LocalKafkaError(f"port {self.port} on 127.0.0.1 is already in use")
        # Free ports are chosen with their sockets held open, so the two differ and nobody
        # takes them while the storage is formatted; closed just before the broker starts.
        wanted = [name for name in ("port", "controller_port") if not getattr(self, name)]
        held = reserve_ports(len(wanted), avoid=(self.port, self.controller_port))
        try:
            for name, sock in zip(wanted, held):
                setattr(self, name, sock.getsockname()[1])
            if self.secure:
                self.secure.prepare(self.data_dir)
            conf = self.data_dir / "server.properties"
            conf.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
            (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
            java = ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                    "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                    f"-Dkafka.logs.dir={self.data_dir}",
                    f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                    "-cp", f"{libs}/*"]
            meta = self.data_dir / "logs" / "meta.properties"
            if not meta.exists():
                fmt = subprocess.run(
                    java + ["kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(conf),
                            "--ignore-formatted", *(self.secure.format_args() if self.secure else [])],
                    capture_output=True, text=True)
                if fmt.returncode != 0:
                    raise LocalKafkaError(f"formatting KRaft storage failed: {fmt.stderr[-2000:]}")
            self.cluster_id = _read_cluster_id(meta)
            preexec = die_with_parent_preexec() if self.die_with_parent else None
            log = open(self.data_dir / "stdout.log", "ab")
        finally:
            for sock in held:
                sock.close()
        with log:
            self.proc = subprocess.Popen(java + ["kafka.Kafka", str(conf)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=preexec)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LocalKafkaError(
                    f"the Kafka broker exited with code {self.proc.returncode}; "
                    f"see {self.data_dir}/server.log and stdout.log:\n{self.log_tail()}")
            answered = _cluster_id_at(self.client_kwargs()) if port_open(self.port) else None
            if answered is not None:
                self._check_ours(answered)
                return
            time.sleep(0.3)
        self.stop()
        raise LocalKafkaError(f"the Kafka broker did not become ready within {timeout:.0f} s:\n"
                              f"{self.log_tail()}")

    def _check_ours(self, answered: str) -> None:
        """The broker that answered on our port must be ours: the cluster id we formatted the
        storage with, and our process still running. Otherwise another process took the port
        between choosing it and the broker binding it: stop ours and fail."""
        if answered == self.cluster_id and self.proc is not None and self.proc.poll() is None:
            return
        self.stop()
        raise LocalKafkaError(
            f"another Kafka broker answered on {self.bootstrap} (cluster id {answered!r}, ours is "
            f"{self.cluster_id!r}): the port was taken by another process before this broker "
            f"could bind it. Start again, or pass a free --port.")

    def log_tail(self, n: int = 30) -> str:
        lines: list[str] = []
        for name in ("stdout.log", "server.log"):
            p = (self.data_dir or Path(".")) / name
            if p.exists():
                lines += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """Hard stop (SIGKILL), for fault tests; `start()` again restarts on the same data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _cluster_id() -> str:
    """A KRaft cluster id (base64url of 16 random bytes). Like Kafka's Uuid.randomUuid, never
    one starting with '-', which the storage tool would read as an option."""
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _read_cluster_id(meta: Path) -> str:
    """cluster.id from a formatted KRaft storage's meta.properties."""
    try:
        for line in meta.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "cluster.id":
                return value.strip()
    except OSError as e:
        raise LocalKafkaError(f"cannot read the KRaft storage's {meta}: {e}") from None
    raise LocalKafkaError(f"{meta} has no cluster.id: delete the data folder to format it again")


def _cluster_id_at(kwargs: dict[str, Any]) -> str | None:
    """The cluster id of the broker answering at kwargs' bootstrap ("" if it sends none), through
    a real Kafka protocol round trip (ApiVersions + Metadata) with aiokafka; None when nothing
    answers."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> str | None:
        admin = AIOKafkaAdminClient(**kwargs, request_timeout_ms=3000)
        try:
            await admin.start()
            return (await admin.describe_cluster()).get("cluster_id") or ""
        except Exception:
            return None
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return asyncio.run(probe())


def terminate(proc: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds. True when it was
    gone or stopped on SIGTERM."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return False
