"""Same inputs, same API calls (issue 20): the bundled samples and a bench/gen.py corpus give the
same multiset of calls at the sandbox APIs whether they are produced with the worker caught up
between topics, back to back, with the topics in reverse order, or to two workers, and when
every raw topic is replayed into a fresh app id. And a replay into the same app, after the
state moved on to a newer email, sends nothing the ledger has seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streamproc.dev.samples import encode_sample, load_samples
from streamproc.dev.sandbox import SandboxServer, sandbox_env

from harness import (
    ROOT, WorkerProcess, apply_topics, counter_value, produce, topology_for, unique_prefix,
    wait_for,
)

sys.path.insert(0, str(ROOT))
from bench.gen import mixed  # noqa: E402

INPUTS = ("segment", "clevertap", "mailmodo", "mailjet")  # the order state flows in
HOLD = {"STREAMPROC_HOLD_SECONDS": "3600"}  # nothing expires during a test
CORPUS_SIZE = 200
HOLD_PAIRS = (("segment", "unknown_user"), ("mailmodo", "not_identified"),
              ("mailmodo", "no_clevertap_id"), ("mailjet", "not_identified"))


def corpus() -> dict[str, list[tuple[bytes | None, bytes]]]:
    """Per input, in order: the bundled samples (both phases), then a bench/gen.py corpus."""
    out: dict[str, list[tuple[bytes | None, bytes]]] = {name: [] for name in INPUTS}
    for item in load_samples():
        out[item["input"]].append(encode_sample(item))
    for raw in mixed(CORPUS_SIZE, seed=20):
        out[raw.input].append((raw.key, raw.value))
    return out


def cli(bootstrap: str, prefix: str, app_id: str, *args: str,
        timeout: float = 170) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(STREAMPROC_KAFKA_BOOTSTRAP_SERVERS=bootstrap, STREAMPROC_TOPIC_PREFIX=prefix,
               STREAMPROC_TOPICS_FILE=str(ROOT / "topics.yaml"), STREAMPROC_APP_ID=app_id)
    res = subprocess.run([sys.executable, "-m", "streamproc", *args], env=env,
                         capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _canon(item: Any, drop: tuple[str, ...] = ()) -> str:
    if isinstance(item, dict):
        item = {k: v for k, v in item.items() if k not in drop}
    return json.dumps(item, sort_keys=True)


def calls(sandbox: SandboxServer) -> Counter:
    """Accepted calls per record (batching aside), without ids and sending times. Mailjet's
    contactmetadata calls are set-up (one per property and worker), not records."""
    out: Counter = Counter()
    mm, mj, seg, ct = (sandbox[n] for n in ("mailmodo", "mailjet", "segment", "clevertap"))
    for r in mm.requests(status=200):
        items = r.body.get("values", [r.body]) if r.path.startswith("/addToList") else [r.body]
        path = "/addToList" if r.path.startswith("/addToList") else r.path
        out.update(f"mailmodo {path} {_canon(i, ('listName',))}" for i in items)
    out.update(f"mailjet {_canon(op)}" for op in mj.operations)
    for r in seg.requests(status=200):
        items = r.body.get("batch", [r.body]) if isinstance(r.body, dict) else []
        out.update(f"segment {_canon(m, ('messageId', 'sentAt'))}" for m in items)
    for r in ct.requests(status=200):
        out.update(f"clevertap {_canon(i)}" for i in r.body.get("d", []))
    return out


def held(workers: list[WorkerProcess]) -> Counter:
    """Inputs held now, summed over the workers: held - released - expired - overflow."""
    out: Counter = Counter()
    for w in workers:
        text = w.metrics()
        for source, reason in HOLD_PAIRS:
            labels = {"source": source, "waits_for": reason}
            n = counter_value(text, "streamproc_tracks_held_total", **labels)
            n -= counter_value(text, "streamproc_holds_released_total", **labels)
            for why in ("expired", "overflow"):
                n -= counter_value(text, "streamproc_holds_dropped_total", reason=why, **labels)
            out[(source, reason)] += int(n)
    return +out


class Run:
    """One fresh topic prefix and sandbox, its workers, and what reached the APIs."""

    def __init__(self, bootstrap: str, sandbox: SandboxServer) -> None:
        self.bootstrap, self.sandbox = bootstrap, sandbox
        for name in ("mailmodo", "mailjet", "segment", "clevertap"):
            sandbox[name].reset()
        self.prefix = unique_prefix()
        self.topology = topology_for(self.prefix)
        apply_topics(bootstrap, self.topology)
        self.workers: list[WorkerProcess] = []

    def worker(self, name: str, app_id: str | None = None) -> WorkerProcess:
        w = WorkerProcess(self.bootstrap, self.prefix, app_id=app_id, name=name,
                          env_extra={**sandbox_env(self.sandbox.base_urls), **HOLD})
        self.workers.append(w)
        return w.start()

    def produce(self, name: str, items: list[tuple[bytes | None, bytes]]) -> None:
        produce(self.bootstrap, self.topology.inputs[name].name, items)

    def caught_up(self, app_id: str) -> None:
        cli(self.bootstrap, self.prefix, app_id, "wait", "--caught-up", "--timeout", "150")

    def stop(self) -> None:
        for w in self.workers:
            w.stop_or_kill()


def run_once(bootstrap: str, sandbox: SandboxServer, mode: str) -> dict[str, Counter]:
    """Produce the corpus in `mode`; the calls and holds once caught up (caught_up mode: then
    also those of a fresh app id fed by `streamproc replay` of every raw topic)."""
    data = corpus()
    run = Run(bootstrap, sandbox)
    try:
        workers = [run.worker("w1")] + ([run.worker("w2")] if mode == "two_workers" else [])
        for w in workers:
            w.wait_ready(timeout=120)
        app_id = workers[0].app_id
        order = list(reversed(INPUTS)) if mode == "reversed" else list(INPUTS)
        for name in order:
            run.produce(name, data[name])
            if mode == "caught_up":
                run.caught_up(app_id)
        run.caught_up(app_id)
        got = {"calls": calls(sandbox), "held": held(workers)}
        if mode == "caught_up":
            run.stop()
            for name in ("mailmodo", "mailjet", "segment", "clevertap"):
                sandbox[name].reset()
            fresh = run.worker("w3", app_id=f"{run.prefix}fresh")
            fresh.wait_ready(timeout=120)
            for name in INPUTS:
                cli(bootstrap, run.prefix, fresh.app_id, "replay", name, "--from-offset", "0")
            run.caught_up(fresh.app_id)
            got.update(replay_calls=calls(sandbox), replay_held=held([fresh]))
        return got
    finally:
        run.stop()


@pytest.fixture(scope="module")
def caught_up_run(kafka_bootstrap):
    with SandboxServer() as sandbox:
        yield run_once(kafka_bootstrap, sandbox, "caught_up")


@pytest.mark.parametrize("mode", ["back_to_back", "reversed", "two_workers"])
def test_same_calls_whatever_the_order_across_topics(kafka_bootstrap, sandbox, caught_up_run,
                                                    mode):
    want = caught_up_run
    assert sum(want["calls"].values()) > 200  # the corpus really reached the APIs
    got = run_once(kafka_bootstrap, sandbox, mode)
    assert got["calls"] == want["calls"], (got["calls"] - want["calls"],
                                           want["calls"] - got["calls"])
    assert got["held"] == want["held"]


def test_replay_of_every_raw_topic_into_a_fresh_app_gives_the_live_calls(caught_up_run):
    want, got = caught_up_run["calls"], caught_up_run["replay_calls"]
    assert got == want, (got - want, want - got)
    assert caught_up_run["replay_held"] == caught_up_run["held"]


# ------------------------------------------------------------------ replay into the same app


def _partition(key: str, n: int) -> int:
    return DefaultPartitioner()(key.encode(), list(range(n)), list(range(n)))


def identify(email: str, mid: str, ts: str) -> dict:
    return {"type": "identify", "userId": "u-r", "messageId": mid, "timestamp": ts,
            "traits": {"email": email}}


def track(mid: str, ts: str) -> dict:
    return {"type": "track", "userId": "u-r", "messageId": mid, "timestamp": ts,
            "event": "Order Completed", "properties": {"order_id": mid}}


def test_replay_into_the_same_app_sends_nothing_the_ledger_saw(stack):
    """A track sent for the user's first email; the user then gets a newer email (on another
    sink partition); `replay segment --from-offset 0` into the same app sends nothing again."""
    parts = stack.topology.destinations["mailmodo"].sink.partitions
    first = "first@example.com"
    newer = next(e for e in (f"newer{i}@example.com" for i in range(100))
                 if _partition(e, parts) != _partition(first, parts))
    mm = stack.sandbox["mailmodo"]

    def events() -> Counter:
        return Counter(r.body["event_properties"]["order_id"]
                       for r in mm.requests("/addEvent", status=200))

    def upserts(email: str) -> int:
        return sum(1 for r in mm.requests("/addToList*", status=200)
                   for v in r.body.get("values", [r.body]) if v.get("email") == email)

    w = stack.worker(**HOLD)
    w.wait_ready()
    seg = stack.topic("segment")
    ghost = {**track("g1", "2026-11-20T09:00:00Z"), "userId": "u-ghost"}  # held: never identified
    produce(stack.bootstrap, seg, [("u-ghost", ghost),
                                   ("u-r", identify(first, "i1", "2026-11-20T10:00:00Z")),
                                   ("u-r", track("t1", "2026-11-20T10:01:00Z"))])
    wait_for(lambda: events()["t1"] == 1, timeout=90, what="the track sent")
    produce(stack.bootstrap, seg, [("u-r", identify(newer, "i2", "2026-11-20T10:02:00Z"))])
    wait_for(lambda: upserts(newer) == 1, timeout=90, what="the newer email upserted")
    dry = cli(stack.bootstrap, stack.prefix, w.app_id, "replay", "segment", "--from-offset", "0",
              "--dry-run").stdout
    assert "held now, waiting for state: 1 (segment/unknown_user 1)" in dry, dry
    cli(stack.bootstrap, stack.prefix, w.app_id, "replay", "segment", "--from-offset", "0")
    # barrier: a new track of the same user queues behind the replayed records
    produce(stack.bootstrap, seg, [("u-r", track("t2", "2026-11-20T10:03:00Z"))])
    wait_for(lambda: events()["t2"] == 1, timeout=90, what="the barrier track sent")
    cli(stack.bootstrap, stack.prefix, w.app_id, "wait", "--caught-up", "--timeout", "150")
    assert events() == Counter({"t1": 1, "t2": 1})
    assert (upserts(first), upserts(newer)) == (1, 1)


# ------------------------------------------------------------------ holds across a restart


def segment_messages(sandbox: SandboxServer) -> list[dict]:
    return [m for r in sandbox["segment"].requests(status=200)
            for m in (r.body.get("batch", [r.body]) if isinstance(r.body, dict) else [])]


def test_holds_survive_a_restart_and_expire_without_further_input(stack):
    """Held inputs live in the state tables: after a restart on the same data dir, one is
    released by the identify that comes then, and the other expires with no input for its key
    (the new worker's sweeper finds it by scanning its stores) and is decided as without holds:
    a Mailjet event of a contact never identified goes out with the email as anonymousId."""
    hold = {"STREAMPROC_HOLD_SECONDS": "30"}
    w = stack.worker(**hold)
    w.wait_ready()
    produce(stack.bootstrap, stack.topic("mailjet"), [("late@example.com", [
        {"event": "open", "time": 1763633640, "email": "late@example.com", "MessageID": 42}])])
    produce(stack.bootstrap, stack.topic("mailmodo"), [("soon@example.com", {
        "event": "opened", "email": "soon@example.com", "timestamp": 1763633400})])

    def held_by(worker, source: str) -> float:
        return counter_value(worker.metrics(), "streamproc_tracks_held_total", source=source)

    wait_for(lambda: held_by(w, "mailjet") == 1 and held_by(w, "mailmodo") == 2, timeout=90,
             what="both inputs held (the open for Segment and for CleverTap)")
    assert w.stop() == 0
    assert segment_messages(stack.sandbox) == []
    w2 = stack.worker(name="w2", data_dir=w.data_dir, **hold)
    w2.wait_ready(timeout=120)
    produce(stack.bootstrap, stack.topic("segment"), [("u-soon", {
        "type": "identify", "userId": "u-soon", "messageId": "i-soon",
        "timestamp": "2026-11-20T10:00:00Z", "traits": {"email": "soon@example.com"}})])
    wait_for(lambda: len(segment_messages(stack.sandbox)) == 2, timeout=120,
             what="the released open and the expired Mailjet event at Segment")
    by_event = {(m["event"], m.get("userId"), m.get("anonymousId"))
                for m in segment_messages(stack.sandbox)}
    assert by_event == {("Email Opened", "u-soon", None),
                        ("Email Opened", None, "late@example.com")}
    text = w2.metrics()
    assert counter_value(text, "streamproc_holds_released_total", source="mailmodo",
                         waits_for="not_identified") == 1
    assert counter_value(text, "streamproc_holds_dropped_total", reason="expired",
                         source="mailjet", waits_for="not_identified") == 1
    # the open's CleverTap part waited for an ID that never came: expired as well
    wait_for(lambda: counter_value(w2.metrics(), "streamproc_holds_dropped_total",
                                   reason="expired", source="mailmodo",
                                   waits_for="no_clevertap_id") == 1, timeout=90,
             what="the CleverTap part expired")
    assert stack.sandbox["clevertap"].requests(status=200) == []
