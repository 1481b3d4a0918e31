"""The producer streamproc writes its own records with (repartition, sink and dead-letter
topics): aiokafka with acks=all and idempotence, batched, and awaited before an input is
acknowledged, so an input offset is committed only after its outputs are on the broker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from mode import Service

log = logging.getLogger(__name__)

# (topic, key, value) or (topic, key, value, headers as [(name, bytes)])
Out = tuple[str, bytes | None, bytes] | tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]


class OutputProducer(Service):
    """Sends batches of records and waits until the broker acknowledged every one. A send
    that fails is retried (the batch is idempotent per delivery id downstream), so a broker
    outage blocks the agent instead of acknowledging inputs whose outputs were lost."""

    def __init__(self, client_kwargs: dict[str, Any], client_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self._kwargs = client_kwargs
        self._client_id = client_id
        self.producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        self.producer = AIOKafkaProducer(
            **self._kwargs,
            client_id=f"{self._client_id}-out",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=30000,
        )
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send_all(self, records: Iterable[Out]) -> int:
        """Send records in order and wait for every acknowledgement. Returns the count."""
        pending = list(records)
        total = len(pending)
        attempt = 0
        while pending:
            assert self.producer is not None, "OutputProducer not started"
            futs = []
            try:
                for rec in pending:
                    headers = rec[3] if len(rec) > 3 else None
                    futs.append(await self.producer.send(rec[0], value=rec[2], key=rec[1],
                                                         headers=headers or None))
                results = await asyncio.gather(*futs, return_exceptions=True)
            except KafkaError as exc:
                results = [exc] * len(pending)
                for f in futs:  # consume exceptions of already-queued sends
                    f.add_done_callback(lambda fut: fut.exception())
            failed = [rec for rec, res in zip(pending, results) if isinstance(res, BaseException)]
            if not failed:
                return total
            attempt += 1
            err = next(r for r in results if isinstance(r, BaseException))
            delay = min(0.2 * 2 ** attempt, 10.0)
            log.warning("producing %d records failed (%r); retrying in %.1fs (attempt %d)",
                        len(failed), err, delay, attempt)
            await asyncio.sleep(delay)
            # Re-send everything that failed; records that succeeded are not sent again.
            # Order per key is kept because the producer is idempotent and records of a key
            # that failed are re-sent in their original order.
            pending = failed
        return total
