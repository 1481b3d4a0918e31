"""The state agents' batch context (BatchContext): a write-back view of the state tables for
one agent batch, the decoded state kept per key, and the batch's metric counts
(streamproc/worker/agents.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamproc import runtime
from streamproc.runtime import TableWriter, set_current_event

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime


class BatchContext:
    """What one agent batch shares, so per-event work stays small:

    - a write-back view of the state tables: each key is read from RocksDB at most once per
      batch, and written (RocksDB + changelog record) at most once, at the end of the batch,
      with faust's current event set to the last event that changed it (same key, same
      partition). Values are kept as the encoded bytes, so no event sees another's in-place
      changes unless they were written;
    - the decoded state of a key, kept beside its bytes so the next event of the key in the
      batch does not decode it again. The invariant: `objs[k]` is only ever the decoding of
      `values[k]`, and an object handed to an event (load) leaves `objs` until that event
      writes it back with its new bytes (set). An event that changes nothing, or crashes
      half-way, cannot leave an in-place change behind: the next one decodes the bytes;
    - metric counts, logged per event and applied once per label set at the batch's end (a
      prometheus label lookup costs microseconds, paid several times per event otherwise).
      An event that crashes has its counts dropped with its outputs: `del counts[mark:]`,
      the mark taken as it started (its sink records are not sent: nor counted as routed).

    Called without a batch (tests, tools), the state functions make a context that writes
    through faust's table API and flush it at once, like a plain table access (no changelog
    send is left un-awaited: only an agent batch, which awaits them, writes directly)."""

    __slots__ = ("rt", "values", "objs", "writers", "counts", "event", "direct", "undo")

    def __init__(self, rt: Runtime, direct: bool = True) -> None:
        self.rt = rt
        self.direct = direct  # batched writes the agent awaits; else faust's table API
        self.values: dict[tuple[str, str], bytes | None] = {}
        self.objs: dict[tuple[str, str], Any] = {}  # decoded values[k], see the invariant
        self.writers: dict[tuple[str, str], Any] = {}  # dirty keys -> last event that wrote
        self.counts: list[tuple[Any, tuple[str, ...], int]] = []  # (metric, labels, n), in order
        self.event: Any = None  # the event being handled (set by the agent)
        # (values, writers) entries of the keys the event being handled changed, as they were
        # before it: revert() puts them back when it crashes (None: not kept)
        self.undo: dict[tuple[str, str], tuple[Any, Any]] | None = None

    def get(self, table: str, key: str) -> bytes | None:
        k = (table, key)
        try:
            return self.values[k]
        except KeyError:
            pass
        ev = self.event
        writer = _writers(self.rt).get(table) if self.direct else None
        if ev is not None and writer is not None and writer.direct():
            raw = writer.db(ev.message.partition).get(key.encode())
        else:
            if ev is not None:  # faust reads the current event's partition store
                set_current_event(ev)
            raw = self.rt.tables[table].get(key)
        self.values[k] = raw
        return raw

    def load(self, table: str, key: str, cls: type) -> Any:
        """The decoded state of a key (None: no state), for the event being handled: its own
        object, taken out of `objs` (see the invariant in the class notes)."""
        obj = self.objs.pop((table, key), None)
        if obj is not None:
            return obj
        raw = self.get(table, key)
        return cls.loads(raw) if raw is not None else None

    def set(self, table: str, key: str, value: bytes, obj: Any = None) -> None:
        """The key's new bytes; `obj`, when given, is the object they encode (kept for the
        next event of the key); without it, an object kept for older bytes is dropped."""
        k = (table, key)
        undo = self.undo
        if undo is not None and k not in undo:
            undo[k] = (self.values.get(k, _UNSET), self.writers.get(k, _UNSET))
        self.values[k] = value
        if obj is not None:
            self.objs[k] = obj
        else:
            self.objs.pop(k, None)
        self.writers.pop(k, None)  # keep write order = order of the last change
        self.writers[k] = self.event

    def revert(self) -> list[tuple[str, str]]:
        """Put back what the event being handled changed (it crashed: what it decided is not
        sent, so neither may its state change be, e.g. held inputs it released would be lost);
        returns the (table, key) reverted. Their decoded objects are dropped: the next event
        decodes the bytes (the invariant above)."""
        undo, self.undo = self.undo or {}, {}
        for k, (value, writer) in undo.items():
            self.objs.pop(k, None)
            if value is _UNSET:
                self.values.pop(k, None)
            else:
                self.values[k] = value
            self.writers.pop(k, None)
            if writer is not _UNSET:
                self.writers[k] = writer
        return list(undo)

    def count(self, metric: Any, *labels: str, n: int = 1) -> None:
        self.counts.append((metric, labels, n))

    def flush_tables(self) -> list[runtime.Staged]:
        """Send the changed keys' changelog records, one record batch per table partition
        (TableWriter.stage); the batch awaits them with its outputs, then apply() writes each
        partition's RocksDB store. Through the table API when the store is not faust's
        RocksDB store (unit tests' memory tables), or without a batch (direct=False)."""
        writers = _writers(self.rt) if self.direct else _NO_WRITERS
        groups: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
        for (table, key), event in self.writers.items():
            value = self.values[(table, key)]
            writer = writers.get(table)
            if event is not None and writer is not None and writer.direct():
                group = groups.setdefault((table, event.message.partition), [])
                group.append((key.encode(), value))
                continue
            if event is not None:
                set_current_event(event)
            self.rt.tables[table][key] = value
        self.writers.clear()
        return [writers[table].stage(partition, entries)
                for (table, partition), entries in groups.items()]

    def flush_counts(self) -> None:
        totals: dict[tuple[Any, tuple[str, ...]], int] = {}
        for metric, labels, n in self.counts:
            k = (metric, labels)
            totals[k] = totals.get(k, 0) + n
        self.counts.clear()
        for (metric, labels), n in totals.items():
            (metric.labels(*labels) if labels else metric).inc(n)

    def flush(self) -> None:
        self.flush_tables()
        self.flush_counts()


def _writers(rt: Runtime) -> dict[str, TableWriter]:
    """The state tables' writers (register() adds them; none in tests that build a Runtime
    by hand: the table API is used then)."""
    return rt.table_writers


_NO_WRITERS: dict[str, TableWriter] = {}
_UNSET = object()  # no entry (BatchContext.undo)
