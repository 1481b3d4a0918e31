"""The worker's checkpoint: per assigned partition, the offset below which every record was
processed (its outputs and changelog records acknowledged by the broker) or holds no record.
As in Kafka Streams' task commit and quixstreams' Checkpoint, state and outputs are flushed
before offsets move: an agent batch awaits its sends before it reports itself done.

Per partition: `epoch`, bumped on every seek (records carry the epoch they were handed in; a
report of another epoch changes nothing); `inflight`, records handed in this epoch and not
done; `fetched`, the fetch position after the last fetch of this epoch (every offset below it
was handed over or holds no record: aiokafka passes transaction markers, aborted and compacted
records without returning them). One agent takes a partition's records in fetch order, so a
done record at offset o means every record of the epoch before it is done: `next` becomes
o + 1, and with nothing in flight, `fetched`. It only moves forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

MAX_BACKOFF_S = 30.0


@dataclass
class _Partition:
    next: int
    epoch: int
    inflight: int = 0
    fetched: Optional[int] = None
    failures: int = 0  # failed batches in a row (the retry backoff)


class Checkpoint:
    def __init__(self) -> None:
        self._parts: dict[Any, _Partition] = {}
        self._epochs = 0
        self.rewinds: dict[Any, int] = {}  # tp -> offset to seek to before the next fetch

    def __contains__(self, tp: Any) -> bool:
        return tp in self._parts

    def _bump(self) -> int:
        self._epochs += 1
        return self._epochs

    def assign(self, starts: Mapping[Any, int]) -> None:
        """Start the partitions at `starts` (the consumer was sought there); every other
        partition is forgotten."""
        self._parts = {tp: _Partition(next=offset, epoch=self._bump())
                       for tp, offset in starts.items()}
        self.rewinds.clear()

    def revoke(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)
            self.rewinds.pop(tp, None)

    def epoch(self, tp: Any) -> Optional[int]:
        p = self._parts.get(tp)
        return None if p is None else p.epoch

    def epochs(self) -> dict[Any, int]:
        return {tp: p.epoch for tp, p in self._parts.items()}

    def next(self, tp: Any) -> Optional[int]:
        p = self._parts.get(tp)
        return None if p is None else p.next

    def handed(self, tp: Any, epoch: int, n: int) -> bool:
        """The fetch loop hands `n` records of `tp` fetched in `epoch`; False: stale."""
        p = self._parts.get(tp)
        if p is None or p.epoch != epoch:
            return False
        p.inflight += n
        return True

    def fetched_to(self, tp: Any, epoch: int, position: int) -> None:
        p = self._parts.get(tp)
        if p is not None and p.epoch == epoch:
            p.fetched = position
            if p.inflight == 0 and position > p.next:
                p.next = position

    def done(self, tp: Any, epoch: int, last_offset: int, n: int) -> None:
        """A batch completed `n` records of `tp` handed in `epoch`, the last at `last_offset`."""
        p = self._parts.get(tp)
        if p is None or p.epoch != epoch:
            return
        p.failures = 0
        p.inflight = max(0, p.inflight - n)
        if last_offset + 1 > p.next:
            p.next = last_offset + 1
        if p.inflight == 0 and p.fetched is not None and p.fetched > p.next:
            p.next = p.fetched

    def rewind(self, tp: Any, epoch: int) -> Optional[float]:
        """A batch with records of `tp` handed in `epoch` failed: the partition goes back to
        its checkpoint (a new epoch: nothing handed before counts), to be fetched again after
        the returned backoff in seconds. None when the epoch was already over."""
        p = self._parts.get(tp)
        if p is None or p.epoch != epoch:
            return None
        p.epoch, p.inflight, p.fetched = self._bump(), 0, None
        p.failures += 1
        self.rewinds[tp] = p.next
        return min(MAX_BACKOFF_S, 0.5 * 2 ** (p.failures - 1))

    def reseek(self, tp: Any) -> None:
        """Records of `tp` were fetched and not handed over (fetched around a seek or a
        rebalance): it is sought back to its checkpoint before the next fetch (a new epoch)."""
        p = self._parts.get(tp)
        if p is not None:
            p.epoch, p.inflight, p.fetched = self._bump(), 0, None
            self.rewinds[tp] = p.next

    def committable(self, committed: Mapping[Any, Optional[int]],
                    tps: Optional[Iterable[Any]] = None) -> dict[Any, int]:
        """{tp: next} for the partitions whose checkpoint is past their committed offset."""
        parts = self._parts
        chosen = parts if tps is None else [tp for tp in tps if tp in parts]
        out = {}
        for tp in chosen:
            offset, done = parts[tp].next, committed.get(tp)
            if done is None or offset > done:
                out[tp] = offset
        return out
