"""`streamproc wait --caught-up` and `GET /caught-up` on the real broker with a real worker:
behind (naming the partition) before any processing; once the verb says caught up, the sink
already holds every expected record and the sandbox already received every contact (the
sink's offsets are committed only after delivery); the endpoint agrees."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import httpx
import orjson

from harness import ROOT, WorkerProcess, produce, read_topic

N = 12  # identify events with an email: one contact_upsert each on sink.mailmodo


def identify(i: int) -> dict:
    return {"type": "identify", "userId": f"cu-{i}", "messageId": f"cu-m{i}",
            "timestamp": "2026-11-20T10:00:00Z",
            "traits": {"email": f"caught{i}@example.com", "firstName": f"C{i}"}}


def wait_verb(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamproc", "wait", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))


def show(res: subprocess.CompletedProcess) -> str:
    return f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"


def delivered_emails(sandbox) -> set[str]:
    mm = sandbox["mailmodo"]
    out = {r.body["email"] for r in mm.requests("/addToList", status=200)}
    for r in mm.requests("/addToList/batch", status=200):
        out |= {v["email"] for v in r.body["values"]}
    return out


def test_wait_caught_up_and_the_endpoint(stack):
    segment = stack.topic("segment")
    # the worker's environment before it runs (same app id = same consumer group)
    w = WorkerProcess(stack.bootstrap, stack.prefix, env_extra=dict(stack.env), name="w1",
                      app_id=f"{stack.prefix}app",
                      data_dir=tempfile.mkdtemp(prefix="streamproc-w1-"))
    stack.workers.append(w)  # stopped at the end by the stack fixture
    env = w.env()

    res = wait_verb(env)  # bad usage: the only thing it waits for is --caught-up
    assert res.returncode == 2, show(res)

    produce(stack.bootstrap, segment, [(f"cu-{i}", identify(i)) for i in range(N)])

    # nothing processed yet: behind, naming the input partitions (never committed)
    res = wait_verb(env, "--caught-up", "--timeout", "10", "--json")
    assert res.returncode == 1, show(res)
    doc = orjson.loads(res.stdout)
    assert doc["caught_up"] is False
    behind = {(b["topic"], b["partition"]): (b["committed"], b["end"]) for b in doc["behind"]}
    assert {t for t, _ in behind} == {segment}, doc
    assert sum(end for _, end in behind.values()) == N
    assert all(committed is None for committed, _ in behind.values())
    part, (_, end) = next(iter(behind.items()))
    assert f"{segment}:{part[1]} none/{end}" in res.stderr, show(res)

    w.start()
    w.wait_ready(timeout=120)
    started = time.monotonic()
    res = wait_verb(env, "--caught-up", "--timeout", "90")
    assert res.returncode == 0, show(res) + "\n" + w.log_tail()
    took = time.monotonic() - started
    assert res.stdout.startswith("caught up: "), show(res)
    topics = 4 + 2 + len(stack.topology.enabled)
    assert f"{topics} topics" in res.stdout, show(res)

    # right away, no waiting: every hop (segment -> by-user -> by-contact -> sink -> API) done
    assert delivered_emails(stack.sandbox) == {f"caught{i}@example.com" for i in range(N)}
    sink = read_topic(stack.bootstrap, stack.topic("sink.mailmodo"), settle=1.0, timeout=20)
    upserts = sorted(r.json()["payload"]["email"].lower() for r in sink
                     if r.json()["op"] == "contact_upsert")
    assert upserts == sorted(f"caught{i}@example.com" for i in range(N)), sink

    r = httpx.get(w.url + "/caught-up", timeout=40)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["caught_up"] is True and body["behind"] == [] and body["rounds"] == 1
    assert body["topics"] == topics
    print(f"caught up {took:.1f}s after the worker was ready; {res.stdout.strip()}")
