"""The two holes issue 13 names in the offset-safety layer, as tests that failed on the main
before the fix: a changelog send that fails before the batch waits for it, and a broker
probe that times out being taken for "no record"."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from streamproc import changelog_acks, unstick


def test_a_changelog_send_that_failed_before_the_wait_fails_the_batch():
    async def run() -> None:
        loop = asyncio.get_running_loop()
        rt = SimpleNamespace(tables={}, extras={})
        fut = loop.create_future()
        changelog_acks.add(rt, fut)
        fut.set_exception(OSError("broker refused the changelog record"))
        await asyncio.sleep(0)  # the failure lands before the batch waits
        with pytest.raises(OSError):
            await changelog_acks.wait(rt)

    asyncio.run(run())


def test_a_probe_that_times_out_never_commits_over_records(monkeypatch):
    tp = TP("raw", 0)
    clock = [0.0]

    class Reader:  # the broker is slow: nothing comes, the position stays at the start
        async def start(self): ...
        async def stop(self): ...
        def assign(self, tps): ...
        def seek(self, tp, offset): ...

        async def getmany(self, *tps, timeout_ms=0, max_records=None):
            clock[0] += timeout_ms / 1000
            return {}

        async def position(self, tp):
            return 7

    import streamproc.topic_reader as topic_reader

    monkeypatch.setattr(topic_reader, "new_consumer", lambda settings, name: Reader())
    monkeypatch.setattr(unstick, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    sought: list = []

    class Consumer:
        async def seek(self, tp, offset):
            sought.append((tp, offset))

    counter = SimpleNamespace(labels=lambda topic: SimpleNamespace(inc=lambda n=1: None))
    rt = SimpleNamespace(app=SimpleNamespace(consumer=Consumer()), settings=None,
                         metrics=SimpleNamespace(offsets_skipped=counter,
                                                 partition_unstuck=counter))
    result = asyncio.run(unstick.unstick(rt, unstick.Stuck(tp, 7, 12, tail=True)))
    assert result == "sought" and sought == [(tp, 7)]
