"""A correction to faust-streaming 0.15.3's offset bookkeeping, applied once at app creation.

Consumer._new_offset(tp) picks the offset to commit from the acknowledged offsets. faust's
committed offset is the *next* offset to read, yet its check for an unacknowledged record
at the head of the list is `min(acked) - committed > 1`: when exactly one record is missing
at the head (committed = C, acked = C+1, C+2, ...) it commits past C. C was never processed:
a batch whose acks streamproc withheld because it failed (agents.acks_only_on_success), or
a record faust dropped around a rebalance (see unstick.py). That record is then lost: its
offset is committed and nothing re-reads it. With the check corrected (`min(acked) >
committed`) the commit waits, and unstick.py seeks the partition back over the gap."""

from __future__ import annotations

from typing import Any

_APPLIED = "_streamproc_head_gap_fix"


def apply() -> None:
    from faust.transport.consumer import Consumer

    if getattr(Consumer, _APPLIED, False):
        return
    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> Any:
        acked = self._acked.get(tp)
        committed = self._committed_offset.get(tp)
        if acked and committed is not None and not self._gap.get(tp):
            if min(acked) > committed:  # the record at `committed` was never acknowledged
                return None
        return original(self, tp)

    Consumer._new_offset = _new_offset
    setattr(Consumer, _APPLIED, True)
