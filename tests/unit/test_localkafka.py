"""The pure parts of `streamproc kafka start`: the ready file, the die-with-parent spawn, the
main-thread guard, the port choice, the check that the broker that answered is ours, and the
command line (the broker itself: tests/integration/test_kafka_command.py)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamproc.__main__ import build_parser
from streamproc.dev import localkafka
from streamproc.dev.localkafka import (LocalKafka, LocalKafkaError, reserve_ports,
                                       write_ready_file)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ready_file_is_the_json_and_replaces_an_old_one(tmp_path):
    path = tmp_path / "kafka.json"
    path.write_text("stale")
    info = {"bootstrap": "127.0.0.1:40123", "pid": 4242, "version": "4.3.0"}
    write_ready_file(path, info)
    assert json.loads(path.read_text()) == info
    assert [p.name for p in tmp_path.iterdir()] == ["kafka.json"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o600  # --secure puts the users' passwords in it


def test_ready_file_appears_whole_by_one_rename(tmp_path, monkeypatch):
    path = tmp_path / "kafka.json"
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((Path(src).parent, path.exists(), json.loads(Path(src).read_text())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_ready_file(path, {"bootstrap": "127.0.0.1:1", "pid": 1, "version": "v"})
    # the complete JSON was in a temporary file in the same folder, and `path` did not exist
    assert seen == [(tmp_path, False, {"bootstrap": "127.0.0.1:1", "pid": 1, "version": "v"})]


def test_a_failed_ready_file_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_ready_file(tmp_path / "kafka.json", {"pid": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_spawned_to_die_with_its_parent_dies_with_a_sigkilled_parent():
    parent_code = (
        "import subprocess, sys, time\n"
        "from streamproc.dev.localkafka import die_with_parent_preexec\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True,\n"
        "                     preexec_fn=die_with_parent_preexec())\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              text=True)
    child = None
    try:
        readable, _, _ = select.select([parent.stdout], [], [], 30)
        assert readable, "the parent printed no child pid within 30 s"
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        parent.stdout.close()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def test_die_with_parent_refuses_a_start_off_the_main_thread(tmp_path):
    errors = []

    def start() -> None:
        try:
            LocalKafka(data_dir=tmp_path, die_with_parent=True).start()
        except LocalKafkaError as e:
            errors.append(str(e))

    t = threading.Thread(target=start)
    t.start()
    t.join(30)
    assert errors and "main thread" in errors[0]
    assert list(tmp_path.iterdir()) == []  # refused before anything was provisioned


def test_kafka_start_takes_a_free_port_unless_told():
    args = build_parser().parse_args(["kafka", "start"])
    assert args.port == 0 and args.ready_file is None  # LocalKafka: port 0 = a free one
    args = build_parser().parse_args(["kafka", "start", "--port", "9092", "--ready-file", "r.json"])
    assert args.port == 9092 and args.ready_file == "r.json"


def test_ready_info_names_the_broker_process():
    kafka = LocalKafka(port=40123)
    assert kafka.ready_info() == {"bootstrap": "127.0.0.1:40123", "pid": None,
                                  "version": kafka.version}
    kafka.proc = subprocess.Popen(["true"])
    kafka.proc.wait()
    assert kafka.ready_info()["pid"] == kafka.proc.pid


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_reserved_ports_are_distinct_and_held_until_closed():
    held = reserve_ports(2)
    try:
        ports = [s.getsockname()[1] for s in held]
        assert len(set(ports)) == 2
        assert not any(bindable(p) for p in ports)  # nobody else gets them meanwhile
        again = reserve_ports(2)  # nor a second call
        try:
            assert not {s.getsockname()[1] for s in again} & set(ports)
        finally:
            for s in again:
                s.close()
    finally:
        for s in held:
            s.close()
    assert all(bindable(p) for p in ports)


def fake_broker_start(tmp_path, monkeypatch, **kw) -> tuple[LocalKafka, dict]:
    """LocalKafka.start() with the jars, the storage tool and the broker process faked: what
    the ports looked like while the storage was formatted and when the broker was spawned."""
    seen: dict = {}
    real_popen = subprocess.Popen

    def run(cmd, **_):
        conf = cmd[cmd.index("-c") + 1]
        seen["format"] = kafka.port, kafka.controller_port, bindable(kafka.port), \
            bindable(kafka.controller_port)
        seen["conf"] = Path(conf).read_text()
        logs = tmp_path / "logs"
        logs.mkdir()
        (logs / "meta.properties").write_text(
            f"node.id=1\ncluster.id={cmd[cmd.index('-t') + 1]}\nversion=1\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def popen(cmd, **_):
        seen["spawn"] = bindable(kafka.port), bindable(kafka.controller_port)
        return real_popen(["true"])

    monkeypatch.setattr(localkafka, "ensure_jars", lambda version=None: tmp_path / "libs")
    monkeypatch.setattr(localkafka.subprocess, "run", run)
    monkeypatch.setattr(localkafka.subprocess, "Popen", popen)
    monkeypatch.setattr(LocalKafka, "_wait_ready", lambda self, timeout: None)
    kafka = LocalKafka(data_dir=tmp_path, **kw)
    kafka.start()
    kafka.proc.wait()
    return kafka, seen


def test_start_takes_two_distinct_ports_held_until_the_broker_is_spawned(tmp_path, monkeypatch):
    kafka, seen = fake_broker_start(tmp_path, monkeypatch)
    port, controller, port_free, controller_free = seen["format"]
    assert port != controller and (port, controller) == (kafka.port, kafka.controller_port)
    assert not port_free and not controller_free  # held while the storage is formatted
    assert seen["spawn"] == (True, True)  # released for the broker
    assert f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}" in seen["conf"]
    assert kafka.cluster_id and kafka.cluster_id in (tmp_path / "logs/meta.properties").read_text()


def test_start_with_a_port_takes_a_different_controller_port(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        wanted = s.getsockname()[1]
    kafka, seen = fake_broker_start(tmp_path, monkeypatch, port=wanted)
    assert kafka.port == wanted and kafka.controller_port != wanted
    assert seen["format"][3] is False  # the controller port was held


def test_a_broker_that_answers_with_another_cluster_id_is_not_ours(tmp_path, monkeypatch):
    """Another process took the port after it was chosen: its broker answered the check."""
    kafka = LocalKafka(port=40123, data_dir=tmp_path, cluster_id="ours-cluster-id")
    kafka.proc = subprocess.Popen(["sleep", "30"])
    ours = kafka.proc
    monkeypatch.setattr(localkafka, "port_open", lambda port, host="127.0.0.1": True)
    monkeypatch.setattr(localkafka, "_cluster_id_at", lambda bootstrap: "someone-elses")
    try:
        with pytest.raises(LocalKafkaError, match=r"another Kafka broker answered on "
                                                  r"127\.0\.0\.1:40123 \(cluster id "
                                                  r"'someone-elses', ours is 'ours-cluster-id'\)"):
            kafka._wait_ready(5)  # noqa: SLF001 - the readiness check under test
        assert ours.poll() is not None and kafka.proc is None  # ours was stopped
    finally:
        if ours.poll() is None:
            ours.kill()
        ours.wait()


def test_our_own_cluster_id_is_ready(tmp_path, monkeypatch):
    kafka = LocalKafka(port=40123, data_dir=tmp_path, cluster_id="ours-cluster-id")
    kafka.proc = subprocess.Popen(["sleep", "30"])
    monkeypatch.setattr(localkafka, "port_open", lambda port, host="127.0.0.1": True)
    monkeypatch.setattr(localkafka, "_cluster_id_at", lambda bootstrap: "ours-cluster-id")
    try:
        kafka._wait_ready(5)  # noqa: SLF001
        assert kafka.proc.poll() is None
    finally:
        kafka.kill()
