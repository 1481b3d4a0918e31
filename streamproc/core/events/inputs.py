"""parse_input: one raw input record (anything with value, timestamp, headers, partition and
offset, e.g. a Kafka message) -> (parsed events, EventErrors). Never raises for bad input;
used by the ingest agent and by `streamproc replay --dry-run`."""

from __future__ import annotations

import logging
from typing import Any

from streamproc.core.errors import EventError
from streamproc.core.events import parse_clevertap, parse_mailjet, parse_mailmodo, parse_segment

log = logging.getLogger(__name__)


def _header(m: Any, name: str) -> str | None:
    for k, v in m.headers or ():
        if k == name and v is not None:
            return v.decode("utf-8", "replace")
    return None


def parse_input(source: str, m: Any) -> tuple[list[Any], list[EventError]]:
    """Raw record -> (parsed events, errors). Never raises for bad input."""
    raw = m.value if m.value is not None else b""
    record_ts = m.timestamp / 1000.0 if m.timestamp else None
    try:
        if source == "segment":
            return [parse_segment(raw, record_ts=record_ts)], []
        if source == "mailmodo":
            return [parse_mailmodo(raw, record_ts=record_ts)], []
        if source == "mailjet":  # an empty array is no event: dead-lettered, not lost
            events, errors = parse_mailjet(raw)
            return events, errors or ([] if events else [EventError(
                "empty", "the record holds no event (an empty array)")])
        if source == "clevertap":
            return parse_clevertap(raw, campaign_id=_header(m, "campaign_id"))
    except EventError as e:
        return [], [e]
    except Exception as e:  # a parser bug must not stop the worker or lose the record
        log.exception("parser crashed on %s record %s:%s", source, m.partition, m.offset)
        return [], [EventError("parser_error", f"{type(e).__name__}: {e}")]
    raise ValueError(f"unknown source {source}")
