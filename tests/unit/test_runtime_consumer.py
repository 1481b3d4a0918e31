"""runtime.Consumer as faust builds it through the transport registry, without a broker."""

from __future__ import annotations

import asyncio

import faust

from streamproc import runtime
from streamproc.runtime.consumer import Consumer


def _app(broker: str) -> faust.App:
    return faust.App(f"runtime-test-{broker.split(':')[0]}", broker=broker, store="memory://",
                     autodiscover=False, web_enabled=False)


def test_the_streamproc_scheme_selects_the_runtime_consumer():
    async def run():
        return type(_app(f"{runtime.SCHEME}://127.0.0.1:1").consumer)

    assert asyncio.run(run()) is Consumer


def test_recovery_records_fetched_before_the_flow_resumes_are_kept_until_a_revoke():
    """faust resumes the flow after recovery's seeks (and again when recovery ends); with its
    own consumer every resume empties the changelog queue, so a changelog record fetched
    after the seek is thrown away and recovery waits for it for ever. The runtime's consumer
    keeps it; a rebalance starting (the revoke) empties the queue, before recovery seeks."""
    async def run(broker: str) -> tuple[int, int]:
        app = _app(broker)
        consumer = app.consumer
        queue = app.tables.changelog_queue
        queue.put_nowait("changelog record fetched after recovery's seek")
        app.flow_control.resume()
        kept = queue.qsize()
        if isinstance(consumer, Consumer):
            await consumer.on_partitions_revoked(set())
        return kept, queue.qsize()

    assert asyncio.run(run("kafka://127.0.0.1:1"))[0] == 0  # faust's own consumer: lost
    assert asyncio.run(run(f"{runtime.SCHEME}://127.0.0.1:1")) == (1, 0)
