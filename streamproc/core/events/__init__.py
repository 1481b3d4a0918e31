"""Input events: pure parsers from raw Kafka bytes to the typed events in `model` (no I/O).
Each parser raises EventError (or returns per-item EventErrors) with a stable `reason`."""

from streamproc.core.events.clevertap import parse_clevertap
from streamproc.core.events.mailjet import parse_mailjet
from streamproc.core.events.mailmodo import parse_mailmodo
from streamproc.core.events.model import (
    MAILJET_EVENTS,
    MAILMODO_EVENTS,
    SEGMENT_TYPES,
    CleverTapTrigger,
    MailjetEvent,
    MailmodoActivity,
    SegmentEvent,
)
from streamproc.core.events.segment import parse_segment

__all__ = [
    "MAILJET_EVENTS",
    "MAILMODO_EVENTS",
    "SEGMENT_TYPES",
    "CleverTapTrigger",
    "MailjetEvent",
    "MailmodoActivity",
    "SegmentEvent",
    "parse_clevertap",
    "parse_mailjet",
    "parse_mailmodo",
    "parse_segment",
]
