"""The producer streamproc writes its own records with (repartition, sink and dead-letter
topics): aiokafka with acks=all and idempotence, batched, and awaited before an input is
acknowledged, so an input offset is committed only after its outputs are on the broker."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (BrokerResponseError, KafkaError, OutOfOrderSequenceNumber,
                             ProducerFenced)
from aiokafka.partitioner import murmur2
from mode import Service

from streamproc.config.kafka_access import auth_resource, denied

log = logging.getLogger(__name__)

# (topic, key, value) or (topic, key, value, headers as [(name, bytes)]), optionally with a
# fifth element: a hash of the writer's choosing, the partition being hash % partitions (else
# the key's murmur2, as Kafka's partitioner picks it; see streamproc.core.outcome_codec.partition_hash)
Out = (tuple[str, bytes | None, bytes]
       | tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]
       | tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None, int | None])


class OutputProducer(Service):
    """Sends batches of records and waits until the broker acknowledged every one. A send
    that fails is retried (the batch is idempotent per delivery id downstream), so a broker
    outage blocks the agent instead of acknowledging inputs whose outputs were lost."""

    def __init__(self, client_kwargs: dict[str, Any], client_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self._kwargs = client_kwargs
        self._client_id = client_id
        self.producer: AIOKafkaProducer | None = None
        self._generation = 0  # bumped each time _reset replaces the producer
        self._reset_lock = asyncio.Lock()
        # agents can start before this service: send_all waits for on_start (a restarted
        # worker with local state has no recovery to sit through and used to crash its
        # agents with "OutputProducer not started")
        self._ready = asyncio.Event()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._kwargs,
            client_id=f"{self._client_id}-out",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=30000,
        )

    async def on_start(self) -> None:
        producer = self._new_producer()
        await producer.start()
        self.producer = producer
        self._ready.set()

    async def _reset(self, generation: int) -> None:
        """Replace the producer (new producer id) unless another caller already did.

        aiokafka's idempotent producer advances a partition's sequence number for a batch the
        broker then refuses for good (e.g. MessageSizeTooLarge); every later batch to that
        partition fails with OutOfOrderSequenceNumber, forever. Only a new producer id clears
        that, so a non-retriable broker answer resets the producer before the retry."""
        async with self._reset_lock:
            if generation != self._generation:
                return
            log.error("a non-retriable broker error broke the producer's sequence numbers; "
                      "starting a new producer")
            old = self.producer
            if old is not None:
                try:
                    await asyncio.wait_for(old.stop(), 10)
                except Exception as exc:  # noqa: BLE001 - the old one is discarded anyway
                    log.warning("stopping the replaced producer failed: %r", exc)
            while True:
                producer = self._new_producer()
                try:
                    await producer.start()
                    break
                except KafkaError as exc:  # broker unreachable: keep trying, as sends do
                    log.warning("starting a new producer failed (%r); retrying", exc)
                    await asyncio.sleep(1.0)
            self.producer = producer
            self._generation += 1

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def started(self) -> AIOKafkaProducer:
        """The current aiokafka producer, once the service has started."""
        if self.producer is None:
            await self._ready.wait()
        assert self.producer is not None, "OutputProducer not started"
        return self.producer

    async def send_all(self, records: Iterable[Out]) -> int:
        """Send records in order and wait for every acknowledgement. Returns the count."""
        pending = list(records)
        total = len(pending)
        attempt = 0
        if self.producer is None:
            await self._ready.wait()
        while pending:
            assert self.producer is not None, "OutputProducer not started"
            generation = self._generation
            sent: list[tuple[asyncio.Future, list[Out]]] = []
            try:
                await self._send_batches(self.producer, pending, sent)
                results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
                failed = [rec for (_, recs), res in zip(sent, results)
                          if isinstance(res, BaseException) for rec in recs]
            except KafkaError as exc:
                results = [exc]
                failed = pending
                for f, _ in sent:  # consume exceptions of already-queued sends
                    f.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
            if not failed:
                return total
            attempt += 1
            err = next(r for r in results if isinstance(r, BaseException))
            delay = min(0.2 * 2 ** attempt, 10.0)
            log.warning("producing %d records failed (%r); retrying in %.1fs (attempt %d)",
                        len(failed), err, delay, attempt)
            if auth_resource(err):  # named, at every retry, until an admin grants it
                log.error("%s", denied("TOPIC", str(err.args[0]) if err.args else "?", "WRITE",
                                       self._kwargs, "producing outputs; retrying"))
            await asyncio.sleep(delay)
            if any(_poisons_producer(r) for r in results):
                await self._reset(generation)
            # Re-send everything that failed; records that succeeded are not sent again.
            # Order per key is kept because the producer is idempotent and records of a key
            # that failed are re-sent in their original order.
            pending = failed
        return total


    @staticmethod
    async def _send_batches(producer: AIOKafkaProducer, records: list[Out],
                            sent: list[tuple[asyncio.Future, list[Out]]]) -> None:
        """Queue `records` as Kafka record batches, one or more per partition (the
        partitioner's choice, as a plain send makes it), appending (future, the batch's
        records) to `sent`. One future per batch instead of one per record: per-record sends
        cost more CPU than the routing (bench/routing.py). A record too large for a batch is
        sent on its own."""
        by_tp: dict[tuple[str, int], list[Out]] = {}
        parts_of: dict[str, list[int]] = {}
        for rec in records:
            topic, key = rec[0], rec[1]
            parts = parts_of.get(topic)
            if parts is None:
                parts = parts_of[topic] = sorted(await producer.partitions_for(topic))
            if len(rec) > 4 and rec[4] is not None:  # type: ignore[misc]
                partition = parts[rec[4] % len(parts)]  # type: ignore[misc]  # writer's hash
            elif key is None:  # random among the available ones, as send() does
                partition = random.choice(sorted(
                    producer.client.cluster.available_partitions_for_topic(topic)) or parts)
            else:
                partition = parts[key_hash(key) % len(parts)]
            group = by_tp.get((topic, partition))
            if group is None:
                by_tp[(topic, partition)] = [rec]
            else:
                group.append(rec)
        for (topic, partition), recs in by_tp.items():
            start = 0
            while start < len(recs):
                batch = producer.create_batch()
                end = start
                while end < len(recs):
                    rec = recs[end]
                    headers = (rec[3] if len(rec) > 3 else None) or []
                    if batch.append(key=rec[1], value=rec[2], timestamp=None,
                                    headers=headers) is None:
                        break
                    end += 1
                if end == start:
                    rec = recs[start]
                    headers = (rec[3] if len(rec) > 3 else None) or None
                    sent.append((await producer.send(topic, value=rec[2], key=rec[1],
                                                     partition=partition, headers=headers),
                                 [rec]))
                    start += 1
                    continue
                batch.close()  # complete: sent now instead of lingering
                sent.append((await producer.send_batch(batch, topic, partition=partition),
                             recs[start:end]))
                start = end


_HASHES: dict[bytes, int] = {}
HASH_CACHE_MAX = 100_000  # keys: about 15 MB with email-sized keys; cleared when full


def key_hash(key: bytes) -> int:
    """The positive murmur2 hash of a record key, as the Java client and aiokafka's
    DefaultPartitioner compute it (partition = hash % partition count). aiokafka's murmur2 is
    pure Python, a few microseconds per key, and streamproc partitions every output record;
    keys recur (a user's events, a contact's activity), so hashes are kept in a bounded cache."""
    h = _HASHES.get(key)
    if h is None:
        if len(_HASHES) >= HASH_CACHE_MAX:
            _HASHES.clear()
        h = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return h


def _poisons_producer(result: object) -> bool:
    """A broker answer that fails a batch for good (not retriable, not a timeout or a lost
    connection): the idempotent producer's sequence for that partition is now broken."""
    return isinstance(result, BrokerResponseError) and not result.retriable or isinstance(
        result, (OutOfOrderSequenceNumber, ProducerFenced))
