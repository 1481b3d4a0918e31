"""CleverTap /1/upload answers read per record: 200 with status partial|fail lists unprocessed
records ({code, error, record}); each is matched back to our record by objectId+evtName+ts."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Mapping

from streamproc.destinations.clevertap.mapping import record_identity
from streamproc.destinations.request import HttpRequest, RecordOutcome
from streamproc.destinations.outcomes import (body_excerpt, classify_status, json_body, rejected,
                                              same_outcome, with_reason)
from streamproc.core.errors import DeliveryError, Retryable

RETRYABLE_RECORD_CODES = frozenset({555})  # "Miscellaneous server error"


def record_error(entry: dict[str, Any], status: int, excerpt: str) -> DeliveryError:
    """The error of one unprocessed entry: 555 is retried, other codes (509 event name missing,
    523 missing identity, 525 bad ts, 526 bad objectId, ...) are permanent."""
    code = entry.get("code")
    message = f"CleverTap {code}: {entry.get('error') or 'record not processed'}"
    if code in RETRYABLE_RECORD_CODES:
        return with_reason(Retryable(message, status=status, body=excerpt), f"clevertap_{code}")
    return rejected(f"clevertap_{code}", message, status=status, body=excerpt)


def _body_level_error(parsed: dict[str, Any], status: int, excerpt: str) -> DeliveryError:
    """status:fail with no unprocessed list: the whole upload failed; its `code` decides."""
    code = parsed.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        err = classify_status(code, excerpt)
        if err is not None:
            return err
    return rejected("clevertap_fail", f"CleverTap upload failed: {parsed.get('error') or excerpt}",
                    status=status, body=excerpt)


def interpret(request: HttpRequest, status: int, body: bytes | str | None,
              headers: Mapping[str, str] | None = None) -> list[RecordOutcome]:
    """Per-record outcomes of one /1/upload response."""
    error = classify_status(status, body, headers)
    parsed = json_body(body)
    if error is not None or not isinstance(parsed, dict):
        return same_outcome(request, error)
    excerpt = body_excerpt(body)
    unprocessed = parsed.get("unprocessed")
    unprocessed = [u for u in unprocessed if isinstance(u, dict)] if isinstance(
        unprocessed, list) else []
    if parsed.get("status") == "fail" and not unprocessed:
        return same_outcome(request, _body_level_error(parsed, status, excerpt))
    entries = request.body.get("d", []) if isinstance(request.body, dict) else []
    positions: dict[str, deque[int]] = defaultdict(deque)
    for index, entry in enumerate(entries):
        positions[record_identity(entry)].append(index)
    errors: dict[int, DeliveryError] = {}
    unmatched = 0
    for item in unprocessed:
        sent = item.get("record")
        queue = positions.get(record_identity(sent)) if isinstance(sent, dict) else None
        if queue:
            errors[queue.popleft()] = record_error(item, status, excerpt)
        else:
            unmatched += 1
    unknown = None
    if unmatched:  # some failure we cannot place: no record of this upload is known to be ok
        unknown = rejected("clevertap_unattributed", f"CleverTap reported {unmatched} unprocessed "
                           "record(s) that match nothing sent; this record may not have been "
                           "processed", status=status, body=excerpt)
    return [RecordOutcome(record_id, errors.get(index, unknown))
            for index, record_id in enumerate(request.record_ids)]
