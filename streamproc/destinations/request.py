"""What a destination mapping hands the delivery engine: HTTP request descriptions (no auth,
no I/O) and per-record outcomes read from a response. The engine owns sending them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamproc.core.errors import DeliveryError


@dataclass(slots=True)
class HttpRequest:
    method: str  # "POST"
    path: str  # relative to the destination base URL, e.g. "/addToList/batch"
    body: Any  # JSON-serialisable body
    record_ids: list[str]  # delivery ids this request carries, in body order
    kind: str  # operation label for metrics and logs, e.g. "addToList/batch"
    exclusive: bool = False  # at most one such request in flight per account
    # per-record identity inside the body, for multi-status answers (e.g. Mailmodo 207 by
    # email); same order as record_ids
    record_keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RecordOutcome:
    record_id: str
    error: DeliveryError | None = None  # None = delivered

    @property
    def ok(self) -> bool:
        return self.error is None
