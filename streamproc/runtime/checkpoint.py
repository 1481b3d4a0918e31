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
        """Start the partitions at `starts` in new epochs; every other one is forgotten."""
        self._parts = {tp: _Partition(next=offset, epoch=self._bump())
                       for tp, offset in starts.items()}
        self.rewinds.clear()

    def revoke(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)
            self.rewinds.pop(tp, None)

    def epoch(self, tp: Any) -> Optional[int]:
        return p.epoch if (p := self._parts.get(tp)) else None

    def epochs(self) -> dict[Any, int]:
        return {tp: p.epoch for tp, p in self._parts.items()}

    def next(self, tp: Any) -> Optional[int]:
        return p.next if (p := self._parts.get(tp)) else None

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
            p.next = max(p.next, position) if p.inflight == 0 else p.next

    def done(self, tp: Any, epoch: int, last_offset: int, n: int) -> None:
        """A batch completed `n` records of `tp` handed in `epoch`, the last at `last_offset`."""
        p = self._parts.get(tp)
        if p is None or p.epoch != epoch:
            return
        p.failures, p.inflight = 0, max(0, p.inflight - n)
        idle_to = p.fetched if p.inflight == 0 and p.fetched is not None else 0
        p.next = max(p.next, last_offset + 1, idle_to)

    def rewind(self, tp: Any, epoch: int, failed: bool = True) -> Optional[float]:
        """A batch of `tp` handed in `epoch` failed (or was held: `failed` False): back to the
        checkpoint in a new epoch, read again after the returned backoff (s); None: epoch over."""
        p = self._parts.get(tp)
        if p is None or p.epoch != epoch:
            return None
        self.reseek(tp)
        p.failures += failed
        return min(MAX_BACKOFF_S, 0.5 * 2 ** (p.failures - 1))

    def reseek(self, tp: Any) -> None:
        """Seek `tp` back to its checkpoint before the next fetch, in a new epoch."""
        p = self._parts.get(tp)
        if p is not None:
            p.epoch, p.inflight, p.fetched = self._bump(), 0, None
            self.rewinds[tp] = p.next

    def failing(self) -> dict[Any, int]:
        """{tp: failed batches in a row} of the partitions being retried."""
        return {tp: p.failures for tp, p in self._parts.items() if p.failures}

    def committable(self, committed: Mapping[Any, Optional[int]],
                    tps: Optional[Iterable[Any]] = None) -> dict[Any, int]:
        """{tp: next} for the partitions whose checkpoint is past their committed offset."""
        parts = self._parts
        chosen = parts if tps is None else [tp for tp in parts if tp in tps or tp.topic in tps]
        return {tp: parts[tp].next for tp in chosen
                if committed.get(tp) is None or parts[tp].next > committed[tp]}
