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


def test_a_failed_batch_pauses_seeks_back_and_resumes_after_its_backoff():
    from faust.types import TP

    async def run():
        consumer = _app(f"{runtime.SCHEME}://127.0.0.1:1").consumer
        tp = TP("raw", 0)
        calls = []

        async def seek_wait(offsets):
            calls.append(("seek", dict(offsets)))

        consumer.seek_wait = seek_wait
        consumer.resume_partitions = lambda tps: calls.append(("resume", list(tps)))
        consumer.pause_partitions = lambda tps: calls.append(("pause", list(tps)))
        consumer.checkpoint.assign({tp: 5})
        epoch = consumer.checkpoint.epoch(tp)
        consumer.checkpoint.handed(tp, epoch, 3)
        consumer.rewind(tp, epoch)  # the batch of offsets 5..7 failed
        assert await consumer._apply_rewinds()
        assert calls == [("pause", [tp]), ("seek", {tp: 5}), ("resume", [])]  # not yet due
        consumer._resume_at[tp] = 0.0  # the backoff passed
        calls.clear()
        assert await consumer._apply_rewinds()
        assert calls == [("resume", [tp])]

        async def failing_seek(offsets):
            raise RuntimeError("partition revoked meanwhile")

        consumer.seek_wait = failing_seek
        consumer.checkpoint.reseek(tp)
        assert not await consumer._apply_rewinds()  # nothing is fetched before it is sought
        assert consumer.checkpoint.rewinds == {tp: 5}  # asked again

    asyncio.run(run())


def test_a_commit_that_failed_is_sent_again():
    from faust.types import TP

    async def run():
        consumer = _app(f"{runtime.SCHEME}://127.0.0.1:1").consumer
        tp = TP("raw", 0)
        consumer.checkpoint.assign({tp: 9})
        consumer._committed_offset[tp] = 4
        sent = []

        async def commit_offsets(offsets, start_new_transaction=True):
            sent.append(dict(offsets))
            consumer._committed_offset.update(offsets)  # as faust does, failed or not
            return len(sent) > 1  # the first commit fails

        consumer._commit_offsets = commit_offsets
        assert not await consumer.force_commit()
        assert consumer._committed_offset[tp] == 4
        assert await consumer.force_commit()
        assert sent == [{tp: 9}, {tp: 9}] and not await consumer.force_commit()

    asyncio.run(run())


def test_a_held_batch_resumes_its_partition_after_the_hold_as_a_faust_tp():
    """Batches carry the fetch loop's partitions (aiokafka TopicPartition); faust's
    resume_partitions adds what it is given to its active set unconverted, and the next
    fetch's `assert isinstance(x, TP)` crashed the worker's fetcher (issue 14's outage test)."""
    from aiokafka import TopicPartition
    from faust.types import TP

    async def run():
        consumer = _app(f"{runtime.SCHEME}://127.0.0.1:1").consumer

        async def seek_wait(offsets):
            pass

        consumer.seek_wait = seek_wait
        tp = TopicPartition("sink", 1)
        consumer.checkpoint.assign({tp: 3})
        epoch = consumer.checkpoint.epoch(tp)
        consumer.checkpoint.handed(tp, epoch, 2)
        consumer.rewind(tp, epoch, hold_s=0.0)  # its destination is paused: held, not failed
        assert consumer.checkpoint.failing() == {}
        assert await consumer._apply_rewinds()
        active = consumer._get_active_partitions()  # faust asserts every member is a TP
        assert TP("sink", 1) in active and all(type(x) is TP for x in active)

    asyncio.run(run())
