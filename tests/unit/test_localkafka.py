"""The pure parts of `streamproc kafka start`: the ready file, the die-with-parent spawn, the
main-thread guard and the command line (the broker itself: tests/integration/test_kafka_command.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamproc.__main__ import build_parser
from streamproc.localkafka import LocalKafka, LocalKafkaError, write_ready_file


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
        "from streamproc.localkafka import die_with_parent_preexec\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True,\n"
        "                     preexec_fn=die_with_parent_preexec())\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              text=True)
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        if alive(child):
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
