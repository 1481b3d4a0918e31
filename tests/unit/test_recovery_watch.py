"""streamproc/recovery_watch.py: a changelog partition whose recovery receives nothing is
read again; one that receives records, has none left, or is not in recovery is left alone."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streamproc import recovery_watch as rw

A, B, C = TP("app-contacts-changelog", 3), TP("app-contacts-changelog", 4), TP("app-known-users-changelog", 5)
STALL = rw.STALL_AFTER_S


def _recovery(started: float = 100.0, in_recovery: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        in_recovery=in_recovery, _recovery_started_at=started,
        active_tps={A, B, C},
        active_offsets={A: -1, B: 40, C: 7},  # A: nothing applied yet
        active_highwaters={A: 120, B: 90, C: 7},  # C: fully read
        _active_events_received_at={B: started + 5.0},
    )


def test_a_partition_with_records_left_and_none_received_is_reported_after_the_stall_time():
    rec, sought = _recovery(), {}
    assert rw.stalled_changelogs(rec, 100.0 + STALL - 1, sought) == []
    got = rw.stalled_changelogs(rec, 100.0 + STALL, sought)
    assert [(s.tp, s.offset, s.highwater, s.seek_to) for s in got] == [(A, -1, 120, 0)]
    # B received a record 5 s after the start: its stall counts from then
    got = rw.stalled_changelogs(rec, 105.0 + STALL, sought)
    assert sorted((s.tp.partition, s.seek_to) for s in got) == [(3, 0), (4, 40)]
    assert all(s.tp != C for s in got)  # nothing left to read


def test_a_partition_sought_again_waits_another_stall_time_and_nothing_outside_recovery():
    rec, sought = _recovery(), {A: 100.0 + STALL}
    assert [s.tp for s in rw.stalled_changelogs(rec, 100.0 + STALL + 1, sought)] == []
    again = rw.stalled_changelogs(rec, 100.0 + 2 * STALL, sought)
    assert sorted(s.tp.partition for s in again) == [3, 4]  # A again; B stalled since 105
    done = _recovery(in_recovery=False)
    assert rw.stalled_changelogs(done, 1e9, sought) == [] and sought == {}


def test_reseek_resumes_the_partition_seeks_it_to_where_recovery_is_and_counts_it():
    calls: list = []

    class Consumer:
        def resume_partitions(self, tps):
            calls.append(("resume", list(tps)))

        async def seek_wait(self, offsets):
            calls.append(("seek", dict(offsets)))

        def _get_active_partitions(self):
            return set()

    counted: list = []
    metrics = SimpleNamespace(recovery_reseeks=SimpleNamespace(
        labels=lambda topic: SimpleNamespace(inc=lambda n=1: counted.append((topic, n)))))
    rt = SimpleNamespace(app=SimpleNamespace(consumer=Consumer()), metrics=metrics)
    asyncio.run(rw.reseek(rt, rw.Stalled(B, 40, 90, 21.0)))
    assert calls == [("resume", [B]), ("seek", {B: 40})]
    assert counted == [(B.topic, 1)]


def test_the_watch_reseeks_a_stalled_partition_once_per_stall_and_stops_with_the_app():
    rec = _recovery(started=0.0)
    seeks: list = []

    class Consumer:
        def resume_partitions(self, tps):
            pass

        async def seek_wait(self, offsets):
            seeks.append(dict(offsets))
            rec._active_events_received_at[A] = rw.time.monotonic()  # records flow again

        def _get_active_partitions(self):
            return {A, B, C}

    app = SimpleNamespace(consumer=Consumer(), should_stop=False)
    counter = SimpleNamespace(labels=lambda topic: SimpleNamespace(inc=lambda n=1: None))
    rt = SimpleNamespace(app=app, metrics=SimpleNamespace(recovery_reseeks=counter))
    rec._recovery_started_at = rw.time.monotonic() - STALL  # started a stall time ago
    rec._active_events_received_at = {B: rw.time.monotonic()}  # B receives records

    async def run():
        task = asyncio.ensure_future(rw.watch(rt, rec, interval=0.01))
        await asyncio.sleep(0.2)
        app.should_stop = True
        await asyncio.wait_for(task, 1.0)

    asyncio.run(run())
    assert seeks == [{A: 0}]  # A once (then it received records), B never, C has none left


def test_install_starts_the_watch_when_partitions_are_assigned_once():
    import faust

    app = faust.App("recovery-watch-test", broker="kafka://127.0.0.1:1", store="memory://")
    rt = SimpleNamespace(app=app, extras={})
    rw.install(rt)

    async def run():
        await app.on_partitions_assigned.send(set())
        first = rt.extras[rw.TASK]
        await app.on_partitions_assigned.send(set())  # a later rebalance: the same watch
        assert rt.extras[rw.TASK] is first and not first.done()
        first.cancel()

    asyncio.run(run())
