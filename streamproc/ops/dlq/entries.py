"""Dead-letter records as `streamproc dlq` reads them back: DlqEntry (the dead_letter() document
with its Kafka coordinates), the filter, the oldest-first selection and the `dlq list` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import orjson

from streamproc.ops.timespec import format_time

INGEST = "ingest"  # the --destination name of streamproc.dlq.ingest
MESSAGE_CHARS = 80
TRIM_SLACK = 1000


@dataclass
class DlqEntry:
    """One record of a dead-letter topic."""

    dlq: str  # destination slug, or "ingest"
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None
    doc: dict[str, Any] | None  # the dead_letter() document; None when unreadable
    error: str | None = None  # why doc is None

    @classmethod
    def from_message(cls, dlq: str, m: Any) -> DlqEntry:
        ts = m.timestamp if getattr(m, "timestamp", None) and m.timestamp > 0 else None
        try:
            doc = orjson.loads(m.value) if m.value is not None else None
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as e:
            return cls(dlq, m.topic, m.partition, m.offset, m.key, ts, None,
                       f"unreadable dead-letter record: {e}")
        return cls(dlq, m.topic, m.partition, m.offset, m.key, ts, doc)

    @property
    def at(self) -> float:
        """dead_lettered_at, else the Kafka record time."""
        v = (self.doc or {}).get("dead_lettered_at")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return (self.timestamp_ms or 0) / 1000.0

    def _get(self, name: str) -> Any:
        return (self.doc or {}).get(name)

    @property
    def stage(self) -> str:
        return str(self._get("stage") or ("?" if self.doc is not None else "unreadable"))

    @property
    def reason(self) -> str:
        return str(self._get("reason") or ("unreadable" if self.doc is None else "?"))

    @property
    def status(self) -> int | None:
        s = self._get("status")
        return s if isinstance(s, int) and not isinstance(s, bool) else None

    @property
    def attempts(self) -> int:
        a = self._get("attempts")
        return a if isinstance(a, int) and not isinstance(a, bool) else 0

    @property
    def record(self) -> dict[str, Any] | None:
        r = self._get("record")
        return r if isinstance(r, dict) else None

    @property
    def source(self) -> dict[str, Any]:
        s = self._get("source")
        return s if isinstance(s, dict) else {}

    @property
    def where(self) -> str:
        """destination, or ingest/<input> and routing/<topic> for the ingest topic."""
        if self.dlq != INGEST:
            return self.dlq
        if self.stage == "ingest" and self.source.get("input"):
            return f"ingest/{self.source['input']}"
        if self.stage == "routing":
            return "ingest/routing"
        return INGEST

    @property
    def ident(self) -> str:
        """The delivery id for a delivery record, else the record key."""
        rec = self.record
        if rec is not None and isinstance(rec.get("id"), str):
            return rec["id"]
        if self.key is None:
            return "-"
        return self.key.decode("utf-8", "replace")

    @property
    def message(self) -> str:
        if self.doc is None:
            return self.error or ""
        text = str(self._get("message") or "")
        excerpt = self._get("response_excerpt")
        if excerpt and str(excerpt).strip() not in text:
            text = f"{text} | {excerpt}" if text else str(excerpt)
        return text

    def sort_key(self) -> tuple[float, str, int, int]:
        return (self.at, self.topic, self.partition, self.offset)

    def to_json(self) -> bytes:
        meta = {"destination": self.dlq, "topic": self.topic, "partition": self.partition,
                "offset": self.offset,
                "key": None if self.key is None else self.key.decode("utf-8", "replace"),
                "timestamp": self.timestamp_ms}
        if self.doc is None:
            return orjson.dumps({"dlq": meta, "error": self.error})
        return orjson.dumps({"dlq": meta, **self.doc})


@dataclass(frozen=True)
class DlqFilter:
    """--reason and --since/--until (on dead_lettered_at)."""

    reason: str | None = None
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # unix seconds, inclusive

    def matches(self, e: DlqEntry) -> bool:
        if self.reason is not None and e.reason != self.reason:
            return False
        if self.since is not None and e.at < self.since:
            return False
        if self.until is not None and e.at > self.until:
            return False
        return True


class Selection:
    """The oldest `limit` matching entries (limit 0: all), and how many matched."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.matched = 0
        self._items: list[DlqEntry] = []

    def add(self, e: DlqEntry) -> None:
        self.matched += 1
        self._items.append(e)
        if self.limit and len(self._items) >= 2 * self.limit + TRIM_SLACK:
            self._trim()

    def _trim(self) -> None:
        self._items.sort(key=DlqEntry.sort_key)
        if self.limit:
            del self._items[self.limit:]

    @property
    def entries(self) -> list[DlqEntry]:
        self._trim()
        return list(self._items)

    @property
    def left_out(self) -> int:
        return self.matched - len(self.entries)


def clip_cell(text: str, width: int) -> str:
    """The text on one line, cut to `width` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


COLUMNS = ("TIME", "DESTINATION", "REASON", "STATUS", "ATTEMPTS", "ID/KEY", "MESSAGE")


def table_rows(entries: Iterable[DlqEntry]) -> list[tuple[str, ...]]:
    return [(format_time(e.at), e.where, e.reason,
             str(e.status) if e.status is not None else "-",
             str(e.attempts) if e.attempts else "-", clip_cell(e.ident, 40),
             clip_cell(e.message, MESSAGE_CHARS)) for e in entries]


def format_table(entries: Iterable[DlqEntry]) -> list[str]:
    rows = table_rows(entries)
    widths = [max([len(COLUMNS[i])] + [len(r[i]) for r in rows]) for i in range(len(COLUMNS))]
    out = []
    for row in [COLUMNS, *rows]:
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return out
