"""`streamproc kafka start` as a subprocess: a free port, the --ready-file JSON once the broker
accepts connections, and a broker that never outlives the command (SIGKILL included)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from harness import ROOT
from streamproc.dev.localkafka import port_open

TOOLING_VARS = ("STREAMPROC_CACHE_DIR", "STREAMPROC_KAFKA_VERSION", "STREAMPROC_KAFKA_HEAP")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_command(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMPROC_") or k in TOOLING_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env["TMPDIR"] = str(temp_dir(tmp_path))  # the broker's temporary data folder goes here
    ready, log = tmp_path / "kafka.json", tmp_path / "kafka.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamproc", "kafka", "start",
                                 "--ready-file", str(ready)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, ready, log


def temp_dir(tmp_path: Path) -> Path:
    """The command's $TMPDIR, where its default data folder (streamproc-kafka-*) is made."""
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    return folder


def data_folders(tmp_path: Path) -> list[Path]:
    return sorted(temp_dir(tmp_path).glob("streamproc-kafka-*"))


def wait_ready(proc: subprocess.Popen, ready: Path, log: Path) -> dict:
    deadline = time.monotonic() + 180
    while not ready.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    return json.loads(ready.read_text())


async def produce_one(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("ready-file-check", 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait("ready-file-check", b"hello")
        assert meta.offset == 0
    finally:
        await producer.stop()


def data_dir_of(pid: int) -> str | None:
    """The broker's data folder (-Dkafka.logs.dir), to delete after a SIGKILL left it behind."""
    for arg in Path(f"/proc/{pid}/cmdline").read_text().split("\0"):
        if arg.startswith("-Dkafka.logs.dir="):
            return arg.split("=", 1)[1]
    return None


def gone_within(pid: int, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid) and not port_open(port):
            return True
        time.sleep(0.2)
    return False


def test_kafka_start_ready_file_and_the_broker_dies_with_a_sigkilled_command(tmp_path):
    proc, ready, log = start_command(tmp_path)
    broker = data = None
    try:
        info = wait_ready(proc, ready, log)
        assert set(info) == {"bootstrap", "pid", "version"}
        broker = info["pid"]
        host, port = info["bootstrap"].rsplit(":", 1)
        assert host == "127.0.0.1" and port_open(int(port)) and alive(broker)
        assert "kafka.Kafka" in Path(f"/proc/{broker}/cmdline").read_text()
        data = data_dir_of(broker)
        assert f"Kafka {info['version']} ready on {info['bootstrap']}" in log.read_text()
        asyncio.run(produce_one(info["bootstrap"]))
        proc.kill()  # SIGKILL of the command alone: no handler of its runs
        proc.wait(10)
        assert gone_within(broker, int(port), 20), "the broker outlived its command"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if broker is not None and alive(broker):
            os.kill(broker, signal.SIGKILL)
        if data and Path(data).name.startswith("streamproc-kafka-"):  # its temporary folder
            shutil.rmtree(data, ignore_errors=True)
        for folder in data_folders(tmp_path):  # also when the start failed before the ready file
            shutil.rmtree(folder, ignore_errors=True)


def test_kafka_start_stops_the_broker_cleanly_on_sigterm(tmp_path):
    proc, ready, log = start_command(tmp_path)
    broker = None
    try:
        info = wait_ready(proc, ready, log)
        broker, port = info["pid"], int(info["bootstrap"].rsplit(":", 1)[1])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        assert not alive(broker) and not port_open(port)
        assert not ready.exists()  # the ready file goes with the broker
        assert data_folders(tmp_path) == []  # and the temporary data folder
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)  # the broker, if any, gets SIGKILL with it (PR_SET_PDEATHSIG)
        if broker is not None and alive(broker):
            os.kill(broker, signal.SIGKILL)
        for data in data_folders(tmp_path):  # left by a failed start or a kill, ready or not
            shutil.rmtree(data, ignore_errors=True)
