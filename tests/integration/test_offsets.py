"""Input offsets on the real broker when the input holds offsets without records.

A transactional producer (Kafka Connect with exactly-once, Kafka Streams, Debezium, ...) writes
a commit marker after each transaction: an offset the consumer never receives. streamproc
commits its checkpoint (streamproc/runtime/checkpoint.py), which passes such offsets because
it follows the consumer's fetch position: aiokafka moves past markers and aborted records
(the worker reads read_committed, STREAMPROC_KAFKA_ISOLATION_LEVEL) without returning them,
and a partition with nothing in flight has its checkpoint at that position.

Checked with the group's committed offsets: they must reach the partitions' end offsets
(markers between records, a marker last, across a restart), and nothing is read twice."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer, TopicPartition
import orjson

from harness import committed_offsets, read_topic, wait_for

TS = "2026-11-20T10:00:00Z"
ABORTED = range(1000, 1020)  # ids written in a transaction that is aborted


def _identify(i: int) -> bytes:
    return orjson.dumps({"type": "identify", "userId": f"u-{i}", "messageId": f"m-{i}",
                         "timestamp": TS, "traits": {"email": f"u{i}@example.com"}})


def _produce(bootstrap: str, topic: str, partitions: int, ids: range, *,
             transactional_id: str | None, abort: bool = False) -> None:
    """Identify events for `ids`, spread over every partition in turn; in one transaction
    when `transactional_id` is set (its commit marker then follows in each partition), which
    is aborted when `abort` (its records stay in the log, followed by an abort marker)."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap,
                                    transactional_id=transactional_id,
                                    enable_idempotence=True)
        await producer.start()
        try:
            async def send_all() -> None:
                for i in ids:
                    await producer.send_and_wait(topic, _identify(i), key=f"u-{i}".encode(),
                                                 partition=i % partitions)
            if transactional_id is None:
                await send_all()
            elif abort:
                await producer.begin_transaction()
                await send_all()
                await producer.abort_transaction()
            else:
                async with producer.transaction():
                    await send_all()
        finally:
            await producer.stop()

    asyncio.run(run())


def _offsets(bootstrap: str, group: str, topic: str, partitions: int,
             ) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offsets of `group`, end offsets) of `topic`'s partitions."""
    from aiokafka import AIOKafkaConsumer

    async def ends() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            got = await consumer.end_offsets(
                [TopicPartition(topic, p) for p in range(partitions)])
        finally:
            await consumer.stop()
        return {tp.partition: off for tp, off in got.items()}

    return committed_offsets(bootstrap, group, topic), asyncio.run(ends())


def test_transactional_input_is_committed_to_the_end_across_a_restart(stack):
    topic = stack.topic("segment")
    parts = stack.topology.inputs["segment"].partitions
    sink = stack.topic("sink.mailmodo")
    w1 = stack.worker()
    w1.wait_ready()
    group = w1.app_id

    def committed_to(target: dict[int, int]) -> bool:
        committed, _ = _offsets(stack.bootstrap, group, topic, parts)
        return all(committed.get(p, -1) == off for p, off in target.items())

    # 1. two transactions, an aborted one, then plain records: markers and aborted records sit
    #    between records in every partition
    _produce(stack.bootstrap, topic, parts, range(0, 30), transactional_id=f"{stack.prefix}tx")
    _produce(stack.bootstrap, topic, parts, range(30, 60), transactional_id=f"{stack.prefix}tx")
    _produce(stack.bootstrap, topic, parts, ABORTED, transactional_id=f"{stack.prefix}tx",
             abort=True)
    _produce(stack.bootstrap, topic, parts, range(60, 60 + parts), transactional_id=None)
    n1 = 60 + parts
    assert len(read_topic(stack.bootstrap, sink, min_count=n1, timeout=60)) == n1
    _, ends = _offsets(stack.bootstrap, group, topic, parts)
    wait_for(lambda: committed_to(ends), timeout=60,
             what=f"commits up to the end offsets {ends} (markers between records)")

    # 2. a transaction last: each partition ends with its commit marker, committed over too
    _produce(stack.bootstrap, topic, parts, range(n1, n1 + parts),
             transactional_id=f"{stack.prefix}tx")
    n2 = n1 + parts
    assert len(read_topic(stack.bootstrap, sink, min_count=n2, timeout=60)) == n2
    _, ends = _offsets(stack.bootstrap, group, topic, parts)
    wait_for(lambda: committed_to(ends), timeout=60,
             what=f"commits over the last markers up to the end offsets {ends}")
    assert w1.stop() == 0

    # 3. restart: the worker resumes at the markers, then gets plain records
    w2 = stack.worker(name="w2", data_dir=w1.data_dir)
    w2.wait_ready()
    _produce(stack.bootstrap, topic, parts, range(n2, n2 + parts), transactional_id=None)
    n3 = n2 + parts
    _, ends = _offsets(stack.bootstrap, group, topic, parts)
    wait_for(lambda: committed_to(ends), timeout=90,
             what=f"commits over the markers up to the end offsets {ends}")
    # every record reached the agents through their feeds: faust's streams (and the
    # flow-control queue fix they needed) get nothing
    samples = [line.split() for line in w2.metrics().splitlines()
               if line.startswith("streamproc_faust_stream_records ")]
    assert samples and float(samples[0][1]) == 0, samples
    emails = sorted(r.json()["payload"]["email"].lower() for r in read_topic(
        stack.bootstrap, sink, min_count=n3, timeout=30))
    # each exactly once, and nothing of the aborted transaction (read_committed)
    assert emails == sorted(f"u{i}@example.com" for i in range(n3))
