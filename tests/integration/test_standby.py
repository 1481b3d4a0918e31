"""Standby replicas (STREAMPROC_STANDBY_REPLICAS -> faust table_standby_replicas): failover
time after kill -9 of one of two workers, with standby=1 and standby=0, on the same state.

Per run: two workers A and B share the group; N identifies (N users + N contacts + N Mailmodo
ledger entries in the tables) are produced and fully processed; then A is SIGKILLed, and at
that moment one track per user on A's by-user partitions is produced. Measured from the kill:

- rebalanced_s: B noticed (its /ready left 'ready' or its assignment grew). Dominated by the
  consumer-group session timeout (STREAMPROC_KAFKA_SESSION_TIMEOUT_S, 10 s by default).
- ready_s: B ready again: all partitions assigned and table recovery finished.
- routed_s: every probe track routed to Mailmodo and delivered (it needs the known-user state
  A wrote), i.e. the failover as a user sees it.
- recovery_s = ready_s - rebalanced_s, takeover_s = routed_s - rebalanced_s: the part of the
  failover that standby replicas can shorten (the session timeout is the same either way).
- recovery_records: changelog records B applied to recover the partitions it took over
  (streamproc_changelog_records_read_total{role="recovery"}, delta over the failover).

The figures are printed and written to bench/results/standby.json. Asserted: with standby B
reads (far) fewer changelog records, and recovery_s and takeover_s are shorter. routed_s (from
the kill) is reported, not compared: the session timeout and its heartbeat jitter (up to 3 s)
dominate it at this state size. STANDBY_TEST_USERS sets N (default 50000: about 75 s on 2
cores). At 20000 users the replay without a standby took 2-3.5 s and a standby's recovery
0.4-1.4 s (faust's fixed recovery steps), close enough for a busy machine to swap them; at
50000 the replay takes about 5 s against 0.5-1 s.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka.partitioner import DefaultPartitioner

from harness import (ROOT, WorkerProcess, apply_topics, delete_topics, produce, topology_for,
                     unique_prefix, wait_for)

USERS = int(os.environ.get("STANDBY_TEST_USERS", "50000"))
PROBES_PER_PARTITION = 3
RESULTS = ROOT / "bench" / "results" / "standby.json"
TS = "2026-11-20T10:00:00Z"


def _topics_file(tmp: Path) -> Path:
    """topics.yaml with only Mailmodo enabled: the state is what matters here, and N Mailjet
    contact calls would only load the shared 2-core machine."""
    doc = yaml.safe_load((ROOT / "topics.yaml").read_text())
    for name, dest in doc["destinations"].items():
        dest["enabled"] = name == "mailmodo"
    path = tmp / "topics-standby.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _env(sandbox_urls: dict[str, str], topics_file: Path, standby: int) -> dict[str, str]:
    from streamproc.dev.sandbox import sandbox_env

    return {**sandbox_env(sandbox_urls), "STREAMPROC_TOPICS_FILE": str(topics_file),
            "STREAMPROC_STANDBY_REPLICAS": str(standby),
            "STREAMPROC_MAILMODO_RATE_LIMIT_RPS": "0", "STREAMPROC_MAILMODO_LINGER_MS": "50",
            "STREAMPROC_MAILMODO_BACKOFF_MAX_S": "1", "STREAMPROC_LOG_LEVEL": "WARNING"}


def _ready(w: WorkerProcess) -> tuple[bool, str]:
    try:
        d = httpx.get(w.url + "/ready", timeout=2).json()
        return bool(d.get("ready")), str(d.get("detail"))
    except (httpx.HTTPError, ValueError):
        return False, "no answer"


def _assigned(detail: str) -> int:
    return int(detail.split()[0]) if detail.endswith("partitions assigned") else -1


def _metric(w: WorkerProcess, name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in w.metrics().splitlines():
        if line.startswith(name + "{") and all(x in line for x in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _by_user_partitions(w: WorkerProcess, topic: str) -> set[int]:
    """The by-user partitions a worker owns (the consumer_lag gauge lists its assignment)."""
    out = set()
    for line in w.metrics().splitlines():
        if line.startswith("streamproc_consumer_lag{") and f'topic="{topic}"' in line:
            out.add(int(line.split('partition="')[1].split('"')[0]))
    return out


def _upserts(mm: Any) -> int:
    return sum(len(r.body["values"]) for r in mm.requests("/addToList/batch", status=200))


def _events(mm: Any) -> set[str]:
    return {r.body["event_properties"].get("order_id") for r in mm.requests("/addEvent", status=200)}


class Group:
    """One consumer group (topic prefix) and its workers; the sandbox records deliveries."""

    def __init__(self, kafka_bootstrap: str, sandbox: Any) -> None:
        self.bootstrap, self.sandbox = kafka_bootstrap, sandbox
        self.prefix = unique_prefix()
        self.topology = topology_for(self.prefix)
        apply_topics(kafka_bootstrap, self.topology)
        self.by_user = self.topology.internal["by_user"]
        self.segment = self.topology.inputs["segment"].name
        self.tmp = Path(tempfile.mkdtemp(prefix="streamproc-standby-"))
        self.topics_file = _topics_file(self.tmp)
        self.workers: list[WorkerProcess] = []

    def pair(self, standby: int, tag: str) -> tuple[WorkerProcess, WorkerProcess]:
        env = _env(self.sandbox.base_urls, self.topics_file, standby)
        a = WorkerProcess(self.bootstrap, self.prefix, env_extra=env, name=f"A{tag}").start()
        self.workers.append(a)
        a.wait_ready(timeout=120)  # A first: it creates the changelog topics
        b = WorkerProcess(self.bootstrap, self.prefix, env_extra=env, name=f"B{tag}").start()
        self.workers.append(b)
        b.wait_ready(timeout=120)
        wait_for(lambda: _by_user_partitions(a, self.by_user.name)
                 and _by_user_partitions(b, self.by_user.name),
                 timeout=90, what="both workers own by-user partitions")
        return a, b

    def build_state(self, n: int) -> float:
        t0 = time.monotonic()
        produce(self.bootstrap, self.segment, [
            (f"user-{i}", {"type": "identify", "userId": f"user-{i}", "messageId": f"id-{i}",
                           "timestamp": TS, "traits": {"email": f"user-{i}@example.com",
                                                       "firstName": "Ada", "plan": "pro"}})
            for i in range(n)])
        wait_for(lambda: _upserts(self.sandbox["mailmodo"]) >= n, timeout=240, interval=1,
                 what=f"{n} contacts processed and delivered")
        return time.monotonic() - t0

    def failover(self, a: WorkerProcess, b: WorkerProcess, n: int, tag: str) -> dict[str, Any]:
        """kill -9 A; at once produce tracks for users on A's by-user partitions; time B."""
        mm = self.sandbox["mailmodo"]
        a_parts = _by_user_partitions(a, self.by_user.name)
        part = DefaultPartitioner()
        all_parts = list(range(self.by_user.partitions))
        per_part: dict[int, list[int]] = {p: [] for p in a_parts}
        for i in range(n):
            p = part(f"user-{i}".encode(), all_parts, all_parts)
            if p in per_part and len(per_part[p]) < PROBES_PER_PARTITION:
                per_part[p].append(i)
        probes = [i for users in per_part.values() for i in users]
        _, detail = _ready(b)
        b_before = _assigned(detail)
        b_recovery_before = _metric(b, "streamproc_changelog_records_read_total", role="recovery")
        b_standby_reads = _metric(b, "streamproc_changelog_records_read_total", role="standby")

        a.kill()
        t_kill = time.monotonic()
        produce(self.bootstrap, self.segment, [
            (f"user-{i}", {"type": "track", "userId": f"user-{i}", "messageId": f"{tag}-{i}",
                           "timestamp": TS, "event": "Probe",
                           "properties": {"order_id": f"{tag}-{i}"}})
            for i in probes])
        want = {f"{tag}-{i}" for i in probes}
        rebalanced = ready = routed = None
        deadline = t_kill + 120
        while time.monotonic() < deadline and (ready is None or routed is None):
            ok, detail = _ready(b)
            now = time.monotonic() - t_kill
            if rebalanced is None and (not ok or _assigned(detail) > b_before):
                rebalanced = now
            if rebalanced is not None and ready is None and ok and _assigned(detail) > b_before:
                ready = now
            if routed is None and want <= _events(mm):
                routed = now
            time.sleep(0.1)
        assert ready is not None and routed is not None, (
            f"failover did not finish: rebalanced={rebalanced} ready={ready} routed={routed}\n"
            f"{b.log_tail()}")
        recovery_records = (_metric(b, "streamproc_changelog_records_read_total", role="recovery")
                            - b_recovery_before)
        return {
            "users": n, "a_by_user_partitions": sorted(a_parts), "probe_tracks": len(probes),
            "rebalanced_s": round(rebalanced, 2), "ready_s": round(ready, 2),
            "routed_s": round(routed, 2), "recovery_s": round(ready - rebalanced, 2),
            "takeover_s": round(routed - rebalanced, 2),
            "recovery_records": int(recovery_records),
            "standby_records_before_kill": int(b_standby_reads),
        }

    def close(self) -> None:
        for w in self.workers:
            w.stop_or_kill()
        delete_topics(self.bootstrap, self.prefix)


def test_standby_replicas_make_failover_faster(kafka_bootstrap, sandbox):
    g = Group(kafka_bootstrap, sandbox)
    try:
        # run 1, standby=1: build the state live (B keeps standby copies of A's partitions)
        a, b = g.pair(standby=1, tag="1")
        build_s = g.build_state(USERS)
        with_standby = {"standby_replicas": 1, "state_build_s": round(build_s, 1),
                        **g.failover(a, b, USERS, tag="s1")}
        print(f"[standby=1] {with_standby}")
        b.stop()
        # run 2, standby=0, same state: a fresh pair recovers it from the changelogs, then A
        # is killed and B must replay A's partitions from the changelogs
        a2, b2 = g.pair(standby=0, tag="2")
        without = {"standby_replicas": 0, **g.failover(a2, b2, USERS, tag="s0")}
        print(f"[standby=0] {without}")
    finally:
        g.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "what": "kill -9 of worker A (of 2) holding half of N users' state (known users, "
                "contacts, Mailmodo ledger); seconds from the kill, consumer-group session "
                "timeout 10 s; recovery_records = changelog records B applied to take over "
                "A's partitions; routed_s = tracks for A's users delivered",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "standby_1": with_standby, "standby_0": without}, indent=2) + "\n")
    # B kept A's partitions warm, so it had (almost) nothing to replay ...
    assert with_standby["standby_records_before_kill"] > 0
    assert without["standby_records_before_kill"] == 0
    assert without["recovery_records"] >= USERS // 2  # A's share of the three tables
    assert with_standby["recovery_records"] * 10 < without["recovery_records"]
    # ... and so its recovery, and the takeover (B noticed A's death -> A's users' tracks
    # routed) were shorter. The time until B notices is the session timeout either way.
    assert with_standby["recovery_s"] < without["recovery_s"]
    assert with_standby["takeover_s"] < without["takeover_s"]
