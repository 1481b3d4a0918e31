"""Fault tests ("prove it"): real workers on a real broker, destinations faked over sockets.

Every test keeps books: the events it produced, and for each one where it ended up:
delivered to a sandbox API, dead-lettered (with its reason), or dropped (counted with its
reason). The books must balance with ZERO lost. At-least-once allows duplicates, so they
are counted (and printed), and every duplicate must be recognisable: all copies of one
delivery carry the same deterministic delivery id on the sink topic.

Bounded sizes (a few hundred events) and loopback only, so each test runs in about a minute
on a 2-core machine shared with other test runs. Waits poll with generous bounds.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streamproc.core.records import original_bytes
from streamproc.dev.localkafka import LocalKafka
from streamproc.dev.sandbox import sandbox_env

from harness import (WorkerProcess, apply_topics, counter_value, delete_topics, produce,
                     read_topic, topology_for, unique_prefix, wait_for)

TS = "2026-11-20T10:00:00Z"
DESTS = ("mailmodo", "segment", "clevertap", "mailjet")


@pytest.fixture
def stack(stack):
    """The conftest stack, plus: workers stopped and the test's topics deleted afterwards."""
    yield stack
    for w in stack.workers:
        w.stop_or_kill()
    delete_topics(stack.bootstrap, stack.prefix)


def fast_env(**extra: str) -> dict[str, str]:
    """Worker settings for fault tests: no vendor plan rate limits (the sandboxes are local),
    short backoff caps so a recovered destination is retried within a second or two. The
    consumer-group session is the worker's default (STREAMPROC_KAFKA_SESSION_TIMEOUT_S, 10 s),
    as a user runs it."""
    env: dict[str, str] = {}
    for d in DESTS:
        p = f"STREAMPROC_{d.upper()}_"
        env[p + "RATE_LIMIT_RPS"] = "0"
        env[p + "BACKOFF_MAX_S"] = "1"
        env[p + "LINGER_MS"] = "50"
    env.update(extra)
    return env


# ------------------------------------------------------------------------------ events


def identify(tag: str, i: int) -> dict[str, Any]:
    u = f"{tag}-{i}"
    return {"type": "identify", "userId": u, "messageId": f"id-{u}", "timestamp": TS,
            "traits": {"email": f"{u}@example.com", "firstName": "Ada"}}


def track(tag: str, i: int) -> dict[str, Any]:
    u = f"{tag}-{i}"
    return {"type": "track", "userId": u, "messageId": f"tr-{u}", "timestamp": TS,
            "event": "Order Completed", "properties": {"order_id": f"tr-{u}"}}


def users_items(tag: str, n: int, *, identifies: bool = True, tracks: bool = True,
                ) -> list[tuple[str, dict[str, Any]]]:
    """(key, value) pairs for segment.raw, keyed by userId as Segment's producers do;
    a user's identify comes before its track (same key: same partition, in order)."""
    out = []
    for i in range(n):
        if identifies:
            out.append((f"{tag}-{i}", identify(tag, i)))
        if tracks:
            out.append((f"{tag}-{i}", track(tag, i)))
    return out


def expected_user_deliveries(tag: str, n: int, *, identifies: bool = True,
                             tracks: bool = True) -> set[tuple[str, str]]:
    """What the sandbox APIs must receive for those users: route 1 (Mailmodo contact upsert +
    Mailjet contact) per identify, route 4 (Mailmodo addEvent) per track."""
    exp: set[tuple[str, str]] = set()
    for i in range(n):
        email = f"{tag}-{i}@example.com"
        if identifies:
            exp |= {("mailmodo.upsert", email), ("mailjet.contact", email)}
        if tracks:
            exp.add(("mailmodo.event", f"tr-{tag}-{i}"))
    return exp


# ------------------------------------------------------------------------------ producing


async def _produce_async(bootstrap: str, records: Iterable[tuple[str, Any, Any]], *,
                         compression: str | None = None) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=compression,
                         max_request_size=4 * 1024 * 1024)
    await p.start()
    try:
        futs = []
        for topic, key, value in records:
            k = key.encode() if isinstance(key, str) else key
            v = value if isinstance(value, bytes) else orjson.dumps(value)
            futs.append(await p.send(topic, value=v, key=k))
        await asyncio.gather(*futs)
    finally:
        await p.stop()


class PacedProducer(threading.Thread):
    """Produces (key, value) pairs to one topic in chunks with a pause in between, so a fault
    can be injected while the stream is flowing. `sent` counts acknowledged records."""

    def __init__(self, bootstrap: str, topic: str, items: list[tuple[Any, Any]],
                 chunk: int = 40, pause: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.items = bootstrap, topic, items
        self.chunk, self.pause = chunk, pause
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as e:  # surfaced by finish()
            self.error = e

    async def _run(self) -> None:
        p = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await p.start()
        try:
            for start in range(0, len(self.items), self.chunk):
                futs = []
                for key, value in self.items[start:start + self.chunk]:
                    k = key.encode() if isinstance(key, str) else key
                    futs.append(await p.send(self.topic, value=orjson.dumps(value), key=k))
                await asyncio.gather(*futs)
                self.sent += len(futs)
                await asyncio.sleep(self.pause)
        finally:
            await p.stop()

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), "producer did not finish"
        if self.error is not None:
            raise self.error
        assert self.sent == len(self.items)


# ------------------------------------------------------------------------------ the books


def received(sandbox: Any) -> Counter[tuple[str, str]]:
    """What the sandbox APIs accepted (2xx answers only), as (kind, identity) -> times.
    Identity: the contact email, or the track's order_id (= its messageId)."""
    c: Counter[tuple[str, str]] = Counter()
    mm = sandbox["mailmodo"]
    for r in mm.requests("/addToList/batch", status=200):
        for v in r.body["values"]:
            c[("mailmodo.upsert", v["email"].lower())] += 1
    for r in mm.requests("/addToList", status=200):
        c[("mailmodo.upsert", r.body["email"].lower())] += 1
    for r in mm.requests("/addEvent", status=200):
        c[("mailmodo.event", str(r.body["event_properties"].get("order_id")))] += 1
    for r in mm.requests("/triggerCampaign/*", status=200):
        c[("mailmodo.trigger", r.body["email"].lower())] += 1
    for r in sandbox["mailjet"].requests("/contactslist/*", status=201):
        body = {k.lower(): v for k, v in r.body.items()}
        c[("mailjet.contact", body["email"].lower())] += 1
    for r in sandbox["segment"].requests("/v1/batch", status=200):
        for m in r.body["batch"]:
            c[("segment.track", m.get("userId") or m.get("anonymousId"))] += 1
    for r in sandbox["clevertap"].requests("/1/upload", status=200):
        for e in r.body["d"]:
            c[("clevertap.event", e.get("objectId"))] += 1
    return c


def sink_identity(rec: dict[str, Any]) -> tuple[str, str]:
    """The same (kind, identity) as received() for one sink record."""
    dest, op, p = rec["destination"], rec["op"], rec["payload"]
    if dest == "mailmodo" and op == "contact_upsert":
        return ("mailmodo.upsert", p["email"].lower())
    if dest == "mailmodo" and op == "add_event":
        return ("mailmodo.event", str(p["properties"].get("order_id")))
    if dest == "mailmodo":
        return ("mailmodo.trigger", p["email"].lower())
    if dest == "mailjet":
        return ("mailjet.contact", p["email"].lower())
    if dest == "segment":
        m = p["message"]
        return ("segment.track", m.get("userId") or m.get("anonymousId"))
    return ("clevertap.event", p["object_id"])


@dataclass
class Books:
    """Events in vs where they went. `expected` is every delivery the inputs must cause."""

    name: str
    events_in: int
    expected: set[tuple[str, str]]
    got: Counter = field(default_factory=Counter)
    sink_ids: dict[tuple[str, str], Counter] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def delivered(self) -> set[tuple[str, str]]:
        return set(self.got) & self.expected

    @property
    def lost(self) -> set[tuple[str, str]]:
        dead = {sink_identity(d["record"]) for d in self.dead if d.get("record")}
        return self.expected - set(self.got) - dead

    @property
    def duplicate_requests(self) -> int:
        return sum(n - 1 for n in self.got.values() if n > 1)

    @property
    def sink_duplicates(self) -> int:
        return sum(sum(c.values()) - 1 for c in self.sink_ids.values())

    def line(self) -> str:
        kinds = Counter(k for k, _ in self.expected)
        dup_kinds = Counter(k for k, n in self.got.items() for _ in range(n - 1))
        return (f"[books {self.name}] events in={self.events_in}; expected deliveries="
                f"{len(self.expected)} {dict(kinds)}; delivered distinct={len(self.delivered)}; "
                f"duplicate API deliveries={self.duplicate_requests} {dict(dup_kinds)}; "
                f"duplicate sink records={self.sink_duplicates}; dead-lettered={len(self.dead)}; "
                f"dropped={self.dropped}; lost={len(self.lost)}")


def settle_books(stack_like: Any, books: Books, *, timeout: float = 120.0,
                 sinks: Iterable[str] = ("mailmodo", "mailjet")) -> Books:
    """Wait until every expected delivery reached the fakes, then close the books: read the
    sink topics (delivery ids) and the destinations' dead-letter topics."""
    sandbox, bootstrap = stack_like.sandbox, stack_like.bootstrap

    def done() -> bool:
        return books.expected <= set(received(sandbox))

    try:
        wait_for(done, timeout=timeout, interval=0.5, what=f"{books.name}: all deliveries")
    finally:
        books.got = received(sandbox)
        missing = books.expected - set(books.got)
        if missing:
            print(f"[books {books.name}] missing {len(missing)} "
                  f"{dict(Counter(k for k, _ in missing))}: {sorted(missing)[:10]}")
    ids: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for dest in sinks:
        for r in read_topic(bootstrap, stack_like.topic(f"sink.{dest}"), settle=0.5):
            rec = r.json()
            ids[sink_identity(rec)][rec["id"]] += 1
        books.dead += [r.json() for r in read_topic(bootstrap, stack_like.topic(f"dlq.{dest}"),
                                                    settle=0.2, timeout=5)]
    books.sink_ids = dict(ids)
    print(books.line())
    return books


def assert_balanced(books: Books) -> None:
    assert not books.lost, f"{len(books.lost)} lost: {sorted(books.lost)[:10]}"
    assert not books.dead, [d.get("reason") for d in books.dead][:10]
    assert not set(books.got) - books.expected, sorted(set(books.got) - books.expected)[:10]
    # Duplicates are allowed (at-least-once) but must be recognisable: every copy of one
    # delivery on the sink topic carries the same deterministic delivery id, and every
    # delivery the API received (the books' identities) has exactly one such id.
    for ident in books.expected:
        assert ident in books.sink_ids, f"{ident} delivered but not on its sink topic"
        assert len(books.sink_ids[ident]) == 1, (ident, books.sink_ids[ident])
    all_ids = [next(iter(c)) for c in books.sink_ids.values()]
    assert len(all_ids) == len(set(all_ids)), "two deliveries share one delivery id"


# ------------------------------------------------------------------------------ worker crash


@pytest.mark.parametrize("membership", ["dynamic", "static"])
def test_kill9_worker_mid_stream_and_restart_same_data_dir(stack, membership):
    """kill -9 mid-stream, then a worker on the same data dir and web address: nothing lost.
    With static membership (STREAMPROC_KAFKA_GROUP_INSTANCE_ID, the same for both) the
    restarted worker takes the dead one's place at once; without it the group waits for the
    dead member's session to expire. Both times are printed (bin/fault-loop collects them)."""
    n = 300
    books = Books("kill9-restart", 2 * n, expected_user_deliveries("k", n))
    member = ({"STREAMPROC_KAFKA_GROUP_INSTANCE_ID": f"{stack.prefix}w1"}
              if membership == "static" else {})
    w = stack.worker("w1", **fast_env(**member))
    w.wait_ready()
    prod = PacedProducer(stack.bootstrap, stack.topic("segment"), users_items("k", n),
                         chunk=30, pause=0.3)
    prod.start()
    # kill -9 once deliveries are flowing: some delivered, most not yet
    wait_for(lambda: len(received(stack.sandbox)) >= len(books.expected) // 5, timeout=90,
             interval=0.1, what="deliveries flowing")
    owned = _sources(w)
    at_kill, produced_at_kill = len(set(received(stack.sandbox))), prod.sent
    w.kill()
    assert at_kill < len(books.expected), "kill was not mid-stream"
    started = time.monotonic()
    w2 = stack.worker("w1b", data_dir=w.data_dir, web_port=w.web_port,  # same RocksDB store
                      **fast_env(**member))
    wait_for(lambda: owned <= _sources_when_up(w2), timeout=120, interval=0.2,
             what="the restarted worker fetching every source partition")
    print(f"[restart] {membership} membership: the restarted worker fetched every source "
          f"partition {time.monotonic() - started:.1f} s after it started")
    prod.finish()
    settle_books(stack, books)
    print(f"[kill9-restart] at the kill: {produced_at_kill}/{2 * n} events produced, "
          f"{at_kill}/{len(books.expected)} deliveries made")
    assert_balanced(books)  # every track delivered: each found its identify's state
    print(f"[kill9-restart] restarted worker: duplicate tracks dropped unknown_user "
          f"{counter_value(w2.metrics(), 'streamproc_dropped_total', reason='unknown_user'):.0f}")


def test_kill_one_of_two_workers_moves_partitions_and_state(stack):
    n = 300
    # one after the other: the first creates the changelog topics (see the report on two
    # workers starting at the same instant on a fresh topology)
    w1 = stack.worker("w1", **fast_env())
    w1.wait_ready(timeout=120)
    w2 = stack.worker("w2", **fast_env())
    w2.wait_ready(timeout=120)
    wait_for(lambda: _sources(w1) and _sources(w2), timeout=60, what="both workers assigned")
    before = (_sources(w1), _sources(w2))
    # phase 1: identifies only, killed mid-stream
    prod = PacedProducer(stack.bootstrap, stack.topic("segment"),
                         users_items("s", n, tracks=False), chunk=30, pause=0.3)
    prod.start()
    wait_for(lambda: len(received(stack.sandbox)) >= n // 3, timeout=90, interval=0.1,
             what="identifies flowing")
    w1_metrics = w1.metrics()
    w1.kill()
    killed_at = time.monotonic()
    # failover: w2 fetches (and its agents take) every partition w1 had
    wait_for(lambda: _sources(w2) == before[0] | before[1], timeout=120, interval=0.2,
             what="w2 fetching every source partition")
    print(f"[failover] w2 fetched every source partition {time.monotonic() - killed_at:.1f} s "
          f"after the kill of w1 (default session timeout)")
    routed_by_w1 = counter_value(w1_metrics, "streamproc_routed_total")
    assert routed_by_w1 > 0, "the killed worker had not processed anything"
    prod.finish()
    # phase 2: tracks for every user, produced only after w1 is dead. A track for a user
    # whose identify w1 processed must find the known-user state w1 wrote (route 4), so it
    # can only be routed if the state moved to w2 with the partitions.
    produce(stack.bootstrap, stack.topic("segment"), users_items("s", n, identifies=False))
    books = Books("kill-one-of-two", 2 * n, expected_user_deliveries("s", n))
    try:
        settle_books(stack, books)
    except AssertionError:
        print(f"w2 /ready: {_assigned(w2)}; log {w2.log_path}:\n{w2.log_tail(60)}\n"
              f"{w2.metrics()}\nsandbox missing: {sorted(books.expected - set(received(stack.sandbox)))}")
        raise
    after = _sources(w2)
    print(f"[kill-one-of-two] source partitions before: w1 {len(before[0])}, w2 {len(before[1])}; "
          f"w2 after: {len(after)}; w1 routed {routed_by_w1:.0f} records before the kill")
    assert after == before[0] | before[1]  # w2 owns every partition w1 had
    assert_balanced(books)
    m2 = w2.metrics()
    # Every track was delivered (assert_balanced): each found the state w1 wrote. A track
    # can still be counted `unknown_user` once when a *redelivered copy* of it is handled
    # before the redelivered copy of its identify (records after the last commit are read
    # again): a duplicate, not a loss, so it is reported only.
    print(f"[kill-one-of-two] w2: duplicate tracks dropped unknown_user "
          f"{counter_value(m2, 'streamproc_dropped_total', reason='unknown_user'):.0f}")
    assert counter_value(m2, "streamproc_routed_total", destination="mailmodo") >= n


def _sources(w: WorkerProcess) -> set[tuple[str, int]]:
    """The input, internal and sink partitions a worker consumes (its consumer_lag gauge lists
    exactly its assigned source partitions; changelogs are not in it)."""
    out = set()
    for line in w.metrics().splitlines():
        if line.startswith("streamproc_consumer_lag{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.index("}")]
                          .split(","))
            out.add((labels["topic"].strip('"'), int(labels["partition"].strip('"'))))
    return out


def _sources_when_up(w: WorkerProcess) -> set[tuple[str, int]]:
    """_sources(w), or nothing while its web server is not up yet."""
    import httpx

    try:
        return _sources(w)
    except httpx.HTTPError:
        return set()


def _assigned(w: WorkerProcess) -> int:
    """Partitions assigned to a worker, from its /ready detail ('N partitions assigned')."""
    import httpx

    try:
        d = httpx.get(w.url + "/ready", timeout=3).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return int(d["detail"].split()[0]) if d.get("ready") else 0


# ------------------------------------------------------------------------------ broker restart


@pytest.fixture
def own_broker():
    """A broker of this test's own (it gets killed), on a data dir that survives restarts."""
    data = Path(tempfile.mkdtemp(prefix="streamproc-faults-kafka-"))
    kafka = LocalKafka(data_dir=data).start()
    holder = {"kafka": kafka}
    try:
        yield holder
    finally:
        holder["kafka"].stop()
        shutil.rmtree(data, ignore_errors=True)


class _OwnStack:
    """The bits of the `stack` fixture settle_books needs, on the test's own broker."""

    def __init__(self, bootstrap: str, sandbox: Any) -> None:
        self.bootstrap, self.sandbox = bootstrap, sandbox
        self.prefix = unique_prefix()
        self.topology = topology_for(self.prefix)

    def topic(self, role: str) -> str:
        t = self.topology
        if role in t.inputs:
            return t.inputs[role].name
        if role in t.internal:
            return t.internal[role].name
        kind, dest = role.split(".")
        d = t.destinations[dest]
        return d.sink.name if kind == "sink" else d.dead_letter.name


def test_broker_restart_mid_stream(own_broker, sandbox):
    kafka = own_broker["kafka"]
    st = _OwnStack(kafka.bootstrap, sandbox)
    apply_topics(kafka.bootstrap, st.topology)
    w = WorkerProcess(kafka.bootstrap, st.prefix, name="wb",
                      env_extra={**sandbox_env(sandbox.base_urls), **fast_env()}).start()
    try:
        w.wait_ready(timeout=120)
        n = 300
        books = Books("broker-restart", 2 * n, expected_user_deliveries("b", n))
        half = users_items("b", n)[:n]  # users 0..n/2-1, identify + track
        rest = users_items("b", n)[n:]
        produce(kafka.bootstrap, st.topic("segment"), half)
        wait_for(lambda: len(received(sandbox)) >= 20, timeout=60, interval=0.05,
                 what="deliveries flowing")
        at_kill = len(received(sandbox))
        port, cport, data = kafka.port, kafka.controller_port, kafka.data_dir
        kafka.kill()  # SIGKILL the broker mid-stream
        t_down = time.monotonic()
        # the broker stays down ~8 s; the worker must survive it (no exit)
        deadline = t_down + 8
        while time.monotonic() < deadline:
            assert w.proc is not None and w.proc.poll() is None, \
                f"worker exited while the broker was down:\n{w.log_tail()}"
            time.sleep(0.5)
        kafka = own_broker["kafka"] = LocalKafka(port=port, controller_port=cport,
                                                 data_dir=data).start()
        print(f"[broker-restart] broker down for {time.monotonic() - t_down:.1f}s; "
              f"{at_kill} deliveries before the kill")
        w.wait_ready(timeout=120)
        produce(kafka.bootstrap, st.topic("segment"), rest)
        settle_books(st, books, timeout=150)
        assert w.proc is not None and w.proc.poll() is None, "worker died"
        assert_balanced(books)
    finally:
        try:
            w.stop(timeout=30)
        except AssertionError:
            w.kill()


# ------------------------------------------------------------------------------ destination


def test_destination_down_then_back(stack):
    n = 200
    books = Books("mailmodo-down", 2 * n, expected_user_deliveries("d", n))
    mm = stack.sandbox["mailmodo"]
    w = stack.worker("w1", **fast_env(STREAMPROC_MAILMODO_MAX_RETRY_TIME_S="120",
                                      STREAMPROC_MAILMODO_MAX_ATTEMPTS="1000"))
    w.wait_ready()
    mm.down = True
    t0 = time.monotonic()
    produce(stack.bootstrap, stack.topic("segment"), users_items("d", n))
    # Mailjet gets its contacts while Mailmodo is down: a failing destination stalls nobody
    mailjet_all = {i for i in books.expected if i[0] == "mailjet.contact"}
    wait_for(lambda: mailjet_all <= set(received(stack.sandbox)), timeout=60,
             what="mailjet delivered while mailmodo is down")
    wait_for(lambda: time.monotonic() - t0 >= 10 and len(mm.requests(status=503)) >= 3,
             timeout=60, what="mailmodo down for 10 s")
    refused = len(mm.requests(status=503))
    mm.down = False
    t_back = time.monotonic()
    settle_books(stack, books, timeout=90)
    catch_up = time.monotonic() - t_back
    print(f"[mailmodo-down] down {t_back - t0:.1f}s, {refused} requests refused (503); "
          f"all delivered {catch_up:.1f}s after it came back")
    assert_balanced(books)  # includes: nothing dead-lettered
    assert counter_value(w.metrics(), "streamproc_dead_lettered_total") == 0


def test_slow_destination_does_not_stall_others(stack):
    n = 150
    mm = stack.sandbox["mailmodo"]
    mm.latency = 2.0  # every Mailmodo answer takes 2 s (timeout is 10 s: no errors)
    w = stack.worker("w1", **fast_env())
    w.wait_ready()
    items = users_items("sl", n)
    t0 = time.monotonic()
    produce(stack.bootstrap, stack.topic("segment"), items)
    # Mailjet events for the same people -> Segment tracks (route 11): another destination
    produce(stack.bootstrap, stack.topic("mailjet"), [
        (f"sl-{i}@example.com", {"event": "sent", "time": 1763633580,
                                 "email": f"sl-{i}@example.com", "MessageID": 1000 + i})
        for i in range(n)])
    books = Books("slow-mailmodo", 3 * n, expected_user_deliveries("sl", n)
                  | {("segment.track", x) for i in range(n)
                     for x in [f"sl-{i}", f"sl-{i}@example.com"]})
    fast = {i for i in books.expected if not i[0].startswith("mailmodo")}

    def others_done() -> bool:
        got = set(received(stack.sandbox))
        mj = {i for i in fast if i[0] == "mailjet.contact"}
        # a Mailjet event's Segment track is sent with the userId when the contact was
        # already identified, else with the email as anonymousId: either one counts
        seg = {i for i in range(n) if ("segment.track", f"sl-{i}") in got
               or ("segment.track", f"sl-{i}@example.com") in got}
        return mj <= got and len(seg) == n

    wait_for(others_done, timeout=45, interval=0.2, what="mailjet and segment while mailmodo is slow")
    others_time = time.monotonic() - t0
    mm_done = sum(1 for k in received(stack.sandbox) if k[0].startswith("mailmodo"))
    print(f"[slow-mailmodo] mailjet+segment complete {others_time:.1f}s after producing; "
          f"mailmodo (2 s/answer) had {mm_done}/{2 * n} then")
    assert others_time < 30
    assert mm_done < 2 * n, "mailmodo was not lagging"
    mm.latency = 0.0
    # books: the segment identity is userId or email, whichever the route used
    got = received(stack.sandbox)
    books.expected = {e for e in books.expected if e[0] != "segment.track"} | {
        ("segment.track", f"sl-{i}") if ("segment.track", f"sl-{i}") in got
        else ("segment.track", f"sl-{i}@example.com") for i in range(n)}
    settle_books(stack, books, timeout=90, sinks=("mailmodo", "mailjet", "segment"))
    assert_balanced(books)


# ------------------------------------------------------------------------------ poison input


GOOD_N = 40
BIG = 32 * 1024 + 10
MIB = 1024 * 1024


def _poison() -> dict[str, list[tuple[Any, bytes, list[str]]]]:
    """Per input: (key, raw bytes, reasons of the dead letters it must cause)."""
    seg_big = orjson.dumps({**identify("pz", 999), "pad": "x" * BIG})
    mm_big = orjson.dumps({"event": "opened", "email": "big@example.com", "timestamp": 1,
                           "pad": "x" * (MIB + 10)})
    mm_huge_ok = orjson.dumps({"event": "form_submitted", "email": "huge@example.com",
                               "timestamp": 1763633400, "template_name": "T",
                               "form_responses": {"essay": "y" * 1_000_000}})
    assert len(mm_huge_ok) < MIB
    return {
        "segment": [
            (b"p1", b"{not json", ["not_json"]),
            (None, b"", ["not_json"]),
            (b"p3", b"\xff\xfe\x00\x01 binary \x80", ["not_json"]),
            (b"p4", b'["an", "array"]', ["not_object"]),
            (b"p5", orjson.dumps({"type": "identify", "traits": {"email": "n@example.com"},
                                  "timestamp": TS}), ["missing_id"]),
            (b"p6", orjson.dumps({"type": "track", "userId": "x", "event": 42,
                                  "timestamp": TS}), ["wrong_type"]),
            (b"p7", orjson.dumps({"type": "identify", "userId": {"id": 1},
                                  "timestamp": TS}), ["wrong_type"]),
            (b"p8", orjson.dumps({"type": 5, "userId": "x"}), ["bad_type"]),
            (b"p9", orjson.dumps({"type": "track", "userId": "x", "timestamp": TS}),
             ["missing_event"]),
            (b"p10", orjson.dumps({"type": "identify", "userId": "x", "timestamp": "soon"}),
             ["bad_timestamp"]),
            (b"p11", seg_big, ["oversize"]),
        ],
        "mailmodo": [
            (b"m1", b"nope", ["not_json"]),
            (b"m2", orjson.dumps({"event": "opened", "timestamp": 1763633400}), ["missing_email"]),
            (b"m3", orjson.dumps({"event": "opened", "email": "not-an-email",
                                  "timestamp": 1763633400}), ["bad_email"]),
            (b"m4", orjson.dumps({"event": ["opened"], "email": "a@example.com",
                                  "timestamp": 1763633400}), ["wrong_type"]),
            (b"m5", orjson.dumps({"event": "teleported", "email": "a@example.com",
                                  "timestamp": 1763633400}), ["unknown_event"]),
            (b"m6", mm_big, ["oversize"]),
            # valid and under the 1 MiB input limit, but its re-keyed envelope (which keeps
            # the raw body too) is larger than a broker record may be
            (b"m7", mm_huge_ok, ["oversize"]),
        ],
        "mailjet": [
            (b"j1", b"<xml/>", ["not_json"]),
            (b"j2", b"17", ["not_object"]),
            (b"j3", orjson.dumps({"event": "open", "time": 1763633640}), ["missing_email"]),
            # an array: the bad items are dead-lettered alone, the good one is routed
            (b"j4", orjson.dumps([
                {"event": "sent", "time": 1763633580, "email": "arr@example.com",
                 "MessageID": 77},
                {"event": "bogus", "time": 1763633580, "email": "arr@example.com"},
                {"event": "open", "time": 1763633580}]), ["unknown_event", "missing_email"]),
            (b"j5", b'{"event":"sent","time":1763633580,"email":"f@example.com",'
                    b'"MessageID":1.9421777835146492e16}', ["lossy_message_id"]),
        ],
        "clevertap": [
            (b"c1", b"\x00\x00", ["not_json"]),
            (b"c2", orjson.dumps({"data": {}, "campaign_id": "cmp-1"}), ["missing_email"]),
            (b"c3", orjson.dumps({"email": "c3@example.com", "data": {}}), ["missing_campaign_id"]),
            (b"c4", orjson.dumps({"targetId": 1, "key_values": {"campaign_id": "cmp-2"},
                                  "profiles": [{"Email": "prof@example.com", "objectId": "__p"},
                                               {"objectId": "__noemail"}]}), ["missing_email"]),
            (b"c5", orjson.dumps({"email": "c5@example.com", "data": "flat",
                                  "campaign_id": "cmp-1"}), ["wrong_type"]),
        ],
    }


def test_poison_records_dead_lettered_good_ones_routed(stack):
    w = stack.worker("w1", **fast_env())
    w.wait_ready()
    poison = _poison()
    good: dict[str, list[tuple[Any, Any]]] = {
        "segment": users_items("pg", GOOD_N),
        # never identified through Segment: Segment drops them (not_identified); the
        # clevertap_id on the event routes them to CleverTap (route 9)
        "mailmodo": [(f"mo-{i}@example.com", {"event": "opened", "email": f"mo-{i}@example.com",
                                              "timestamp": 1763633400,
                                              "clevertap_id": f"__ct{i}"})
                     for i in range(GOOD_N)],
        "mailjet": [(f"mj-{i}@example.com", {"event": "sent", "time": 1763633580,
                                             "email": f"mj-{i}@example.com",
                                             "MessageID": 5000 + i}) for i in range(GOOD_N)],
        "clevertap": [(f"ct-{i}@example.com", {"email": f"ct-{i}@example.com",
                                               "data": {"n": i}, "campaign_id": "cmp-9"})
                      for i in range(GOOD_N)],
    }
    # interleave: a poison record after every few good ones, on every input
    events_in = 0
    for source in good:
        records: list[tuple[str, Any, Any]] = []
        bad = list(poison[source])
        for j, (key, value) in enumerate(good[source]):
            records.append((stack.topic(source), key, value))
            if j % 4 == 3 and bad:
                k, raw, _ = bad.pop(0)
                records.append((stack.topic(source), k, raw))
        records += [(stack.topic(source), k, raw) for k, raw, _ in bad]
        events_in += len(records)
        # gzip: a > 1 MiB record fits the broker's 1 MB limit only compressed, as a real
        # producer would send it
        asyncio.run(_produce_async(stack.bootstrap, records, compression="gzip"))

    expected_dead = Counter((src, reason) for src, items in poison.items()
                            for _, _, reasons in items for reason in reasons)
    dlq_topic = stack.topic("dead_letter")
    n_dead = sum(expected_dead.values())
    wait_for(lambda: (lambda rs: rs if len(rs) >= n_dead else None)(
        read_topic(stack.bootstrap, dlq_topic, settle=0.2, timeout=10)),
        timeout=90, interval=1, what=f"{n_dead} ingest dead letters")
    docs = [r.json() for r in read_topic(stack.bootstrap, dlq_topic, min_count=n_dead, settle=2)]
    got_dead = Counter((d["source"]["input"], d["reason"]) for d in docs)
    assert got_dead == expected_dead

    # every dead letter carries the original bytes exactly, and where they came from
    originals = {(src, k): raw for src, items in poison.items() for k, raw, _ in items}
    for d in docs:
        src = d["source"]
        key = src["key"].encode("utf-8") if src["key"] is not None else None
        assert src["topic"] == stack.topic(src["input"]) and src["offset"] >= 0
        orig = originals[(src["input"], key)]
        if d.get("original_truncated"):  # ~1 MB: a broker record cannot hold it whole
            assert len(orig) > 900_000 and d["reason"] == "oversize"
            assert d["original_size"] == len(orig)
            assert d["original_sha256"] == hashlib.sha256(orig).hexdigest()
            assert orig.startswith(d["original"].encode()) and len(d["original"]) > 100_000
        else:
            assert original_bytes(d) == orig, (src, d["reason"])
        assert d["message"] and d["stage"] == "ingest"

    # the good records around them were all routed and delivered
    expected = expected_user_deliveries("pg", GOOD_N)
    expected |= {("clevertap.event", f"__ct{i}") for i in range(GOOD_N)}
    expected |= {("segment.track", f"mj-{i}@example.com") for i in range(GOOD_N)}
    expected |= {("segment.track", "arr@example.com")}  # the good item of the j4 array
    expected |= {("mailmodo.trigger", f"ct-{i}@example.com") for i in range(GOOD_N)}
    expected |= {("mailmodo.trigger", "prof@example.com")}  # the good profile of c4
    books = Books("poison", events_in, expected)
    settle_books(stack, books, sinks=DESTS)
    metrics = w.metrics()
    books.dropped = {"segment/not_identified": int(counter_value(
        metrics, "streamproc_dropped_total", destination="segment", reason="not_identified"))}
    print(f"[poison] {sum(len(v) for v in poison.values())} poison records -> {len(docs)} "
          f"dead letters {dict(got_dead)}")
    print(books.line())
    assert books.dropped["segment/not_identified"] == GOOD_N
    assert_balanced(books)
    assert w.proc is not None and w.proc.poll() is None


def test_output_producer_survives_a_record_the_broker_refuses(stack):
    """A record the broker refuses for good (MessageSizeTooLarge) must not break the output
    producer for the other records of that partition. aiokafka's idempotent producer used to
    answer OutOfOrderSequenceNumber to every later batch of the partition, forever (seen with
    an oversize dead letter: the whole ingest agent stalled); OutputProducer now replaces
    its producer after a non-retriable broker error."""
    from streamproc.worker.output import OutputProducer

    topic = stack.topic("dead_letter")

    async def run() -> float:
        out = OutputProducer({"bootstrap_servers": stack.bootstrap}, "faults-test")
        await out.start()
        try:
            # the partition must already hold a record of this producer: the broker then
            # checks the sequence of every later batch
            await out.send_all([(topic, b"k", b'{"first": 1}')])
            big = asyncio.ensure_future(out.send_all([(topic, b"k", b"x" * 1_200_000)]))
            await asyncio.sleep(1.0)  # refused at least once by now
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(out.send_all([(topic, b"k", b'{"small": 1}')]), 30)
            finally:
                big.cancel()  # it can never succeed; the caller decides (dead letters are capped)
            return time.monotonic() - t0
        finally:
            await out.stop()

    took = asyncio.run(run())  # before the fix: TimeoutError (OutOfOrderSequenceNumber loop)
    print(f"[producer-reset] small record after a refused one delivered in {took:.1f}s")
    recs = read_topic(stack.bootstrap, topic, min_count=2, timeout=10)
    assert [r.value for r in recs] == [b'{"first": 1}', b'{"small": 1}']
