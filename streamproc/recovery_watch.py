"""Read a table partition's changelog again when its recovery receives nothing.

A worker that takes over a table partition (restart, rebalance, failover) restores it from
its changelog: faust seeks the changelog partition to the local store's offset, reads up to
the end, and keeps the worker in recovery (not ready, its streams paused) until every
partition it recovers is read. Seen once in about twenty runs of the kill-one-of-two-workers
fault test (tests/integration/test_faults.py): the surviving worker received no record at all
of the changelog partitions it took over, though the broker had them, and waited for them
forever. faust only logs "No event received for active tp ... since recovery start" every
five seconds; issues of faust-streaming report recovery hangs of the same kind (records a
fetch dropped, or a fetch that never came, after a rebalance).

Every CHECK_EVERY_S while recovery of active partitions runs, a changelog partition that
still has records to read and from which no record arrived for STALL_AFTER_S (since recovery
started, or since its last record) is sought again to the offset its recovery is at. The
warning names the partition, its offsets and the fetch state (the consumer's position, and
whether faust fetches the partition at all), and streamproc_recovery_reseeks_total counts it.
Reading changelog records twice is harmless: each record sets (or deletes) its key, and they
are applied in order, so the table ends the same."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamproc.app import Runtime

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
STALL_AFTER_S = 20.0
TASK = "recovery_watch"  # Runtime.extras key of the watching task


@dataclass(frozen=True)
class Stalled:
    """A changelog partition in recovery that received nothing for `idle_s` seconds, with
    `offset` the last offset applied (-1: none) and `highwater` the last one to read."""

    tp: Any
    offset: int
    highwater: int
    idle_s: float

    @property
    def seek_to(self) -> int:
        """Where faust's recovery seeks such a partition (Recovery._seek_offsets)."""
        return max(self.offset, 0)


def stalled_changelogs(recovery: Any, now: float, sought: dict[Any, float]) -> list[Stalled]:
    """The active changelog partitions of faust's `recovery` that have records left to read
    and received none for STALL_AFTER_S, and were not sought again in the last STALL_AFTER_S
    (`sought`: partition -> when; forgotten when recovery is not running)."""
    started = getattr(recovery, "_recovery_started_at", None)
    if not getattr(recovery, "in_recovery", False) or started is None:
        sought.clear()
        return []
    received = recovery._active_events_received_at  # noqa: SLF001 - faust keeps no public view
    offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
    out = []
    for tp in list(recovery.active_tps):
        highwater, offset = highwaters.get(tp), offsets.get(tp)
        if highwater is None or offset is None or highwater - offset <= 0:
            continue
        last = max(received.get(tp, started), started, sought.get(tp, started))
        idle = now - last
        if idle >= STALL_AFTER_S:
            out.append(Stalled(tp, offset, highwater, idle))
    return out


def fetch_state(consumer: Any, tp: Any) -> str:
    """How the consumer fetches `tp`, for the warning."""
    from streamproc.unstick import fetched_position

    try:
        active = tp in consumer._get_active_partitions()  # noqa: SLF001
    except Exception:  # consumer not started / another driver
        active = None
    return (f"position {fetched_position(consumer, tp)}, "
            f"{'fetched' if active else 'not fetched (paused)' if active is False else 'unknown'}")


async def reseek(rt: Runtime, stalled: Stalled) -> None:
    consumer = rt.app.consumer
    tp = stalled.tp
    log.warning("%s:%s: table recovery received no changelog record for %.0f s (applied up to "
                "offset %d of %d; consumer %s): reading it again from offset %d",
                tp.topic, tp.partition, stalled.idle_s, stalled.offset, stalled.highwater,
                fetch_state(consumer, tp), stalled.seek_to)
    rt.metrics.recovery_reseeks.labels(tp.topic).inc()
    consumer.resume_partitions([tp])  # recovery fetches it; a no-op when it already does
    await consumer.seek_wait({tp: stalled.seek_to})


async def watch(rt: Runtime, recovery: Any, interval: float = CHECK_EVERY_S) -> None:
    """Check `recovery` every `interval` seconds until the app stops."""
    sought: dict[Any, float] = {}
    app = rt.app
    while not app.should_stop:
        await asyncio.sleep(interval)
        now = time.monotonic()
        for stalled in stalled_changelogs(recovery, now, sought):
            sought[stalled.tp] = now
            try:
                await reseek(rt, stalled)
            except Exception as e:  # noqa: BLE001 - the consumer is stopping or rebalancing
                log.warning("%s:%s: reading the changelog again failed (%r)",
                            stalled.tp.topic, stalled.tp.partition, e)


def install(rt: Runtime) -> None:
    """Start watching when partitions are first assigned: that is before the first recovery
    (faust starts timers only once it completed, too late for a recovery at start-up)."""
    app = rt.app

    @app.on_partitions_assigned.connect
    async def _start_watch(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        task = rt.extras.get(TASK)
        if task is None or task.done():
            rt.extras[TASK] = app.add_future(watch(rt, app.tables.recovery))  # stopped with it
