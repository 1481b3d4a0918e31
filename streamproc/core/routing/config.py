"""RoutingConfig: the settings routing reads (enabled destinations from topics.yaml, the hold
time, the optional behaviours of routes 2 and 11), frozen and built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from streamproc.core.records import DESTINATIONS, SinkRecord, delivery_id
from streamproc.core.state.model import MAX_PENDING


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    enabled: frozenset[str] = field(default_factory=lambda: frozenset(DESTINATIONS))
    identify_email_from_state: bool = False  # route 2: identify without email uses the last known
    hold_seconds: float = 0.0  # hold inputs waiting for state this long (0 = decide at once)
    send_blocked: bool = False  # route 11: Mailjet `blocked` -> "Email Blocked"
    max_pending: int = MAX_PENDING  # held inputs per user / contact
    source: dict[str, Any] = field(default_factory=dict)  # default sink-record source metadata

    def is_enabled(self, destination: str) -> bool:
        return destination in self.enabled

    @classmethod
    def from_settings(cls, settings: Any, enabled: Iterable[str]) -> RoutingConfig:
        """From streamproc.config.settings.Settings and the destinations enabled in topics.yaml."""
        return cls(
            enabled=frozenset(enabled),
            identify_email_from_state=settings.routing.identify_email_from_state,
            hold_seconds=settings.routing.hold_seconds,
            send_blocked=settings.segment.send_blocked,
        )

    def record(self, destination: str, op: str, key: str, source_id: str,
               payload: dict[str, Any], *, part: str = "", source: Mapping[str, Any] | None = None,
               now: float | None = None, rid: str | None = None) -> SinkRecord:
        """A sink record with its delivery id (`rid`: that id, computed by the caller already);
        `source` ({topic, partition, offset}) defaults to self.source, and gains message_id =
        source_id."""
        meta = dict(self.source if source is None else source)
        meta["message_id"] = source_id
        extra = {} if now is None else {"created_at": now}
        return SinkRecord(destination=destination, op=op, key=key,
                          id=rid or delivery_id(source_id, destination, op, part),
                          payload=payload, source=meta, **extra)
