"""The two holes issue 13 names, kept closed in the runtime that replaced the modules they were
in (their first tests, against changelog_acks and unstick, failed on the main before the fix):

1. a changelog send that failed before the batch waited for it was forgotten, and the batch's
   inputs were acknowledged;
2. a broker probe that timed out was taken for "no record" and committed over records. The
   checkpoint asks no broker: it passes offsets only over records handed over and done, or up
   to the fetch position with nothing in flight."""

from __future__ import annotations

import asyncio

import pytest

from streamproc import runtime
from streamproc.runtime.checkpoint import Checkpoint

TP = ("raw", 0)


def test_a_changelog_send_that_failed_before_the_wait_fails_the_batch():
    async def run() -> None:
        loop = asyncio.get_running_loop()
        failed, ok = loop.create_future(), loop.create_future()
        failed.set_exception(OSError("broker refused the changelog record"))
        ok.set_result(None)
        await asyncio.sleep(0)  # the failure lands before the batch waits
        with pytest.raises(OSError):
            await runtime.wait_all([ok, failed])

    asyncio.run(run())


def test_offsets_are_passed_only_over_records_done_or_up_to_the_fetch_position():
    cp = Checkpoint()
    cp.assign({TP: 7})
    epoch = cp.epoch(TP)
    # records 7, 8 and 10 fetched (9 holds no record), the fetch position is then 12
    assert cp.handed(TP, epoch, 3)
    cp.fetched_to(TP, epoch, 12)
    assert cp.next(TP) == 7  # nothing done yet: the position alone passes nothing
    cp.done(TP, epoch, 8, 2)
    assert cp.next(TP) == 9 and cp.committable({TP: 7}) == {TP: 9}
    cp.done(TP, epoch, 10, 1)  # nothing in flight: up to the fetch position (11: a marker)
    assert cp.next(TP) == 12
    # no probe, no timeout: a partition nothing was fetched of stays where it is
    cp.fetched_to(TP, epoch - 1, 99)  # a position of an earlier epoch counts for nothing
    assert cp.next(TP) == 12
