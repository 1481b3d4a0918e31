"""Table writes are on the broker before the inputs that caused them are acknowledged.

A faust table write only queues its changelog record in faust's producer buffer. faust
flushes that buffer before it commits offsets, but its ProducerBuffer.flush() gives up after
0.1 s without progress (faust-streaming 0.15.3, transport/producer.py), so under load an
offset can be committed while the changelog record of the state change it caused is still
queued. A worker killed at that moment (kill -9, OOM, node loss) loses the state change for
good: the input is not redelivered and the changelog never had it. Seen as tracks dropped
`unknown_user` after a failover, for users whose identify the dead worker had processed
(tests/integration/test_faults.py::test_kill_one_of_two_workers_moves_partitions_and_state).

track(rt) records the future of every changelog record the tables send; wait(rt) waits for
all of them that are still outstanding (they resolve when the broker acknowledged the record;
a failed send raises, so the batch fails and its inputs stay unacknowledged). Agents call
wait(rt) at the end of a batch, before the batch's inputs are acknowledged.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamproc.app import Runtime

KEY = "changelog_futures"


def track(rt: Runtime) -> None:
    """Wrap each table's send_changelog (faust calls it for every set and delete)."""
    pending: set[asyncio.Future] = rt.extras.setdefault(KEY, set())
    for table in rt.tables.values():
        if getattr(table, "_streamproc_tracked", False):
            continue
        send = table.send_changelog

        def send_changelog(*args: Any, _send: Any = send, **kwargs: Any) -> Any:
            fut = _send(*args, **kwargs)
            pending.add(fut)  # kept until wait() has seen its result, failed or not
            return fut

        table.send_changelog = send_changelog
        table._streamproc_tracked = True


def add(rt: Runtime, fut: asyncio.Future) -> None:
    """Have wait(rt) wait for `fut` too (changelog records written by streamproc itself,
    streamproc/state/table_writer.py)."""
    pending: set[asyncio.Future] = rt.extras.setdefault(KEY, set())
    pending.add(fut)  # kept until wait() has seen its result, failed or not


async def wait(rt: Runtime) -> None:
    """Wait until every changelog record sent so far is acknowledged by the broker."""
    pending = rt.extras.get(KEY)
    if pending:
        futs = list(pending)
        pending.difference_update(futs)
        await asyncio.gather(*futs)  # a failed send raises: the batch fails
