"""Pure tests of the output side: dead letters that fit a broker record (fault tests,
tests/integration/test_faults.py), and the output producer (streamproc/worker/output.py): its reset
rule, waiting for the service to start, one record batch per partition in order, murmur2
partitioning as aiokafka and the Java client do, and resending only a failed batch."""

from __future__ import annotations

import asyncio
import hashlib
from types import SimpleNamespace

import orjson
from aiokafka.errors import (KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError,
                             NotLeaderForPartitionError, OutOfOrderSequenceNumber)

from streamproc.core.records import MAX_RECORD_BYTES, dead_letter, original_bytes
from streamproc.worker.output import _poisons_producer


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


def test_output_producer_send_waits_for_the_service_to_start():
    """Agents can run before the OutputProducer service started; they wait, not crash."""
    from streamproc.worker.output import OutputProducer

    async def run() -> int:
        out = OutputProducer({"bootstrap_servers": "127.0.0.1:1"}, "t")
        task = asyncio.ensure_future(out.send_all([("topic", b"k", b"v")]))
        await asyncio.sleep(0.05)
        assert not task.done()
        loop = asyncio.get_running_loop()

        out.producer = BatchProducer(loop)
        out._ready.set()  # what on_start does once the producer started
        return await asyncio.wait_for(task, 1)

    assert asyncio.run(run()) == 1


# keys whose murmur2 hash (the Java client's and aiokafka's partitioner) falls on partition
# 0, 1 and 2 of a 3-partition topic
K = {0: b"\x01", 1: b"\x05", 2: b"\x00"}


class BatchProducer:
    """aiokafka's producer as OutputProducer uses it: metadata (3 partitions per topic, only
    partition 1 with a leader), create_batch/send_batch, and send for a record larger than a
    batch."""

    def __init__(self, loop, capacity: int = 100, fail: int = 0) -> None:
        self.loop, self.capacity, self.fail = loop, capacity, fail
        # a record without a key goes to a random available partition (aiokafka's choice)
        self.client = SimpleNamespace(cluster=SimpleNamespace(
            available_partitions_for_topic=lambda topic: {1}))
        self.topics: list[str] = []
        self.log: list[tuple[str, int, list]] = []  # (topic, partition, records) per request

    async def partitions_for(self, topic):
        self.topics.append(topic)
        return {0, 1, 2}

    def create_batch(self):
        producer = self

        class Batch:
            def __init__(self):
                self.records, self.closed = [], False

            def append(self, *, key, value, timestamp, headers):
                if self.closed or len(value) > 50 or len(self.records) >= producer.capacity:
                    return None
                self.records.append((key, value, headers))
                return object()

            def close(self):
                self.closed = True

        return Batch()

    def _future(self, topic, partition, records):
        fut = self.loop.create_future()
        if self.fail:
            self.fail -= 1
            fut.set_exception(NotLeaderForPartitionError())
        else:
            self.log.append((topic, partition, records))
            fut.set_result(None)
        return fut

    async def send_batch(self, batch, topic, *, partition):
        assert batch.closed
        return self._future(topic, partition, batch.records)

    async def send(self, topic, value, key, partition=None, headers=None):
        return self._future(topic, partition, [(key, value, headers or [])])


def _sent(producer) -> dict:
    out: dict = {}
    for topic, partition, records in producer.log:
        out.setdefault((topic, partition), []).extend((k or b"") + v for k, v, _ in records)
    return out


def _started_output(**kw):
    """An OutputProducer started on a BatchProducer(**kw), no broker."""
    from streamproc.worker.output import OutputProducer

    out = OutputProducer({"bootstrap_servers": "127.0.0.1:1"}, "t")
    producer = out.producer = BatchProducer(asyncio.get_running_loop(), **kw)
    out._ready.set()
    return out, producer


def test_output_producer_sends_a_record_batch_per_partition_in_order():
    from streamproc.worker.output import OutputProducer

    async def run():
        out, producer = _started_output(capacity=2)
        records = [("a", K[i % 3], b"%d" % i) for i in range(7)]
        records.append(("b", K[1], b"h", [("x", b"1")]))
        records.append(("a", K[0], b"L" * 60))  # too large for a batch: sent alone
        records.append(("b", None, b"n"))  # no key: aiokafka's random choice
        assert await out.send_all(records) == 10
        return producer

    producer = asyncio.run(run())
    assert producer.topics == ["a", "b"]  # metadata once per topic and call
    assert _sent(producer) == {("a", 0): [K[0] + b"0", K[0] + b"3", K[0] + b"6", K[0] + b"L" * 60],
                               ("a", 1): [K[1] + b"1", K[1] + b"4"], ("a", 2): [K[2] + b"2", K[2] + b"5"],
                               ("b", 1): [K[1] + b"h", b"n"]}
    # capacity 2: partition 0's three small records take two batches, the large one a send
    assert [len(r) for t, p, r in producer.log if (t, p) == ("a", 0)] == [2, 1, 1]
    assert [r for t, p, r in producer.log if (t, p) == ("b", 1)] == [
        [(K[1], b"h", [("x", b"1")]), (None, b"n", [])]]


def test_output_keys_are_partitioned_as_aiokafka_and_the_java_client_do():
    """The cached hash gives the partition aiokafka's DefaultPartitioner gives (murmur2, the
    Java client's): tables are co-partitioned with the topics other clients produce to."""
    import random

    from aiokafka.partitioner import DefaultPartitioner

    from streamproc.worker import output

    rnd = random.Random(7)
    keys = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40))) for _ in range(500)]
    keys += [f"user-{i}@example.com".encode() for i in range(200)]
    for n in (1, 3, 6, 12, 64):
        parts = list(range(n))
        for key in keys + keys:  # the second pass reads the cache
            assert parts[output.key_hash(key) % n] == DefaultPartitioner()(key, parts, parts)
    before = output.HASH_CACHE_MAX
    try:
        output.HASH_CACHE_MAX = 10
        for i in range(25):
            output.key_hash(b"bounded-%d" % i)
            assert len(output._HASHES) <= 10  # bounded: cleared when full
    finally:
        output.HASH_CACHE_MAX = before


def test_output_producer_resends_only_the_records_of_a_failed_batch():
    from streamproc.worker.output import OutputProducer

    async def run():
        out, producer = _started_output(fail=1)
        records = [("a", K[i % 3], b"%d" % i) for i in range(6)]
        assert await out.send_all(records) == 6
        return producer

    producer = asyncio.run(run())  # the first batch (partition 0) failed once, then went
    assert _sent(producer) == {("a", 0): [K[0] + b"0", K[0] + b"3"], ("a", 1): [K[1] + b"1", K[1] + b"4"],
                               ("a", 2): [K[2] + b"2", K[2] + b"5"]}
    assert [p for _, p, _ in producer.log] == [1, 2, 0]
