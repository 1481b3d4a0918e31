"""Pure tests of the fixes the fault tests (tests/integration/test_faults.py) led to: dead
letters that fit a broker record, the output producer's reset rule, changelog acks before
input acks, faust's head-gap commit check, and the stuck-partition detector."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from types import SimpleNamespace

import orjson
from aiokafka.errors import (KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError,
                             NotLeaderForPartitionError, OutOfOrderSequenceNumber)

from faust.types import TP

from streamproc import changelog_acks, faust_fixes, unstick
from streamproc.output import _poisons_producer
from streamproc.records import MAX_RECORD_BYTES, dead_letter, original_bytes


def _dl(original: bytes) -> dict:
    return orjson.loads(dead_letter(stage="ingest", reason="oversize", message="m",
                                    original=original, source={"topic": "t"}))


def test_dead_letter_keeps_original_bytes_when_they_fit():
    raw = b"\xff\x00 not json " * 1000
    doc = _dl(raw)
    assert original_bytes(doc) == raw and "original_truncated" not in doc


def test_dead_letter_too_large_for_a_record_keeps_a_flagged_prefix():
    for raw in (b"x" * 1_100_000, bytes(range(32)) * 40_000, "é".encode() * 600_000):
        out = dead_letter(stage="ingest", reason="oversize", message="m", original=raw,
                          source={"topic": "t"})
        assert len(out) <= MAX_RECORD_BYTES
        doc = orjson.loads(out)
        assert doc["original_truncated"] is True and doc["original_size"] == len(raw)
        assert doc["original_sha256"] == hashlib.sha256(raw).hexdigest()
        assert raw.startswith(doc["original"].encode(doc["original_encoding"]))
        assert original_bytes(doc) is None  # a prefix is not the original: redrive skips it


def test_output_producer_resets_only_after_a_final_broker_refusal():
    assert _poisons_producer(MessageSizeTooLargeError())
    assert _poisons_producer(OutOfOrderSequenceNumber())
    assert not _poisons_producer(NotLeaderForPartitionError())  # retriable
    assert not _poisons_producer(KafkaConnectionError())  # broker down: just wait
    assert not _poisons_producer(KafkaTimeoutError())
    assert not _poisons_producer(None)


def test_changelog_acks_wait_for_every_changelog_record_sent():
    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        sent: list[asyncio.Future] = []

        class Table:
            def send_changelog(self, *args, **kwargs):
                fut = loop.create_future()
                sent.append(fut)
                return fut

        rt = SimpleNamespace(tables={"users": Table(), "contacts": Table()}, extras={})
        changelog_acks.track(rt)
        changelog_acks.track(rt)  # idempotent: no double wrapping
        rt.tables["users"].send_changelog(0, b"k", b"v")
        rt.tables["contacts"].send_changelog(1, b"k", b"v")
        steps = []
        waiter = asyncio.ensure_future(changelog_acks.wait(rt))
        await asyncio.sleep(0.01)
        steps.append("waiting" if not waiter.done() else "done early")
        sent[0].set_result(None)
        await asyncio.sleep(0.01)
        steps.append("waiting" if not waiter.done() else "done early")
        sent[1].set_result(None)
        await asyncio.wait_for(waiter, 1)
        steps.append("done")
        assert not rt.extras[changelog_acks.KEY]  # resolved futures are forgotten
        await changelog_acks.wait(rt)  # nothing outstanding: returns at once
        return steps

    assert asyncio.run(run()) == ["waiting", "waiting", "done"]


def _consumer(acked: list[int], committed: int | None) -> SimpleNamespace:
    tp = ("t", 0)
    c = SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set),
                        _committed_offset=defaultdict(lambda: None), _gap=defaultdict(list))
    c._acked[tp] = list(acked)
    c._acked_index[tp] = set(acked)
    c._committed_offset[tp] = committed
    return c


def test_faust_does_not_commit_past_one_unacknowledged_record():
    from faust.transport.consumer import Consumer

    faust_fixes.apply()
    faust_fixes.apply()  # idempotent
    tp = ("t", 0)
    # committed 38 = the next record to read; 38 never acked, 39 and 40 were
    assert Consumer._new_offset(_consumer([39, 40], 38), tp) is None
    assert Consumer._new_offset(_consumer([44, 45], 38), tp) is None
    # no gap: commit after the consecutive run, as faust does
    assert Consumer._new_offset(_consumer([38, 39, 41], 38), tp) == 40
    assert Consumer._new_offset(_consumer([0, 1], 0), tp) == 2
    assert Consumer._new_offset(_consumer([5, 6], None), tp) == 7  # never committed: unknown


def test_stuck_partition_is_reported_after_it_stays_stuck():
    tp = TP("sink.mailmodo", 3)
    recovered = SimpleNamespace(is_set=lambda: True)
    consumer = SimpleNamespace(assignment=lambda: {tp}, _acked={tp: [44, 45]},
                               _committed_offset={tp: 38})
    app = SimpleNamespace(_consumer=consumer, rebalancing=False,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=recovered)))
    rt = SimpleNamespace(app=app, topics={"sink.mailmodo": object()})
    seen: dict = {}
    assert unstick.stuck_partitions(rt, seen, 100.0) == []  # first sight
    assert unstick.stuck_partitions(rt, seen, 105.0) == []  # not long enough
    assert unstick.stuck_partitions(rt, seen, 100.0 + unstick.STUCK_AFTER_S) == [(tp, 38)]
    # progress resets the clock; no gap or a rebalance reports nothing
    consumer._committed_offset[tp] = 40
    assert unstick.stuck_partitions(rt, seen, 200.0) == []
    consumer._acked[tp] = [40, 41]
    assert unstick.stuck_partitions(rt, seen, 300.0) == [] and not seen
    consumer._acked[tp] = [44]
    app.rebalancing = True
    assert unstick.stuck_partitions(rt, seen, 400.0) == [] and not seen


def test_output_producer_send_waits_for_the_service_to_start():
    """Agents can run before the OutputProducer service started; they wait, not crash."""
    from streamproc.output import OutputProducer

    async def run() -> int:
        out = OutputProducer({"bootstrap_servers": "127.0.0.1:1"}, "t")
        task = asyncio.ensure_future(out.send_all([("topic", b"k", b"v")]))
        await asyncio.sleep(0.05)
        assert not task.done()
        loop = asyncio.get_running_loop()

        class Producer:
            async def send(self, topic, value, key, headers=None):
                fut = loop.create_future()
                fut.set_result(None)
                return fut

        out.producer = Producer()
        out._ready.set()  # what on_start does once the producer started
        return await asyncio.wait_for(task, 1)

    assert asyncio.run(run()) == 1
