"""Mailmodo answers read per record: 200 with success:false is a rejection, 207 lists failed emails
in errors:[{email, reason}], a rejected batch (400) names its bad emails or duplicates."""

from __future__ import annotations

from typing import Any, Mapping

from streamproc.destinations.request import HttpRequest, RecordOutcome
from streamproc.destinations.outcomes import (body_excerpt, classify_status, json_body, rejected,
                                              same_outcome, with_reason)
from streamproc.core.errors import DeliveryError, Retryable
from streamproc.core.logs import clip


def _message(parsed: Any, default: str) -> str:
    if isinstance(parsed, dict):
        for field in ("message", "error", "reason"):
            if isinstance(parsed.get(field), str) and parsed[field]:
                return parsed[field]
    return default


def failed_emails(parsed: Any) -> dict[str, str] | None:
    """{normalised email: reason} from a body's errors:[{email, reason}], None when absent."""
    if not isinstance(parsed, dict) or not isinstance(parsed.get("errors"), list):
        return None
    out: dict[str, str] = {}
    for item in parsed["errors"]:
        if isinstance(item, dict) and isinstance(item.get("email"), str):
            out[item["email"].strip().lower()] = _message(item, "rejected by Mailmodo")
    return out


def request_emails(request: HttpRequest) -> list[str]:
    """The email of each record of `request`, in record_ids order (record_keys, else the body)."""
    if len(request.record_keys) == len(request.record_ids):
        return request.record_keys
    body = request.body if isinstance(request.body, dict) else {}
    values = body.get("values") if isinstance(body.get("values"), list) else [body]
    emails = [str(v.get("email", "")) if isinstance(v, dict) else "" for v in values]
    return emails if len(emails) == len(request.record_ids) else [""] * len(request.record_ids)


def _per_email(request: HttpRequest, failed: dict[str, str], status: int, excerpt: str,
               others: DeliveryError | None) -> list[RecordOutcome]:
    outcomes = []
    for record_id, email in zip(request.record_ids, request_emails(request)):
        reason = failed.get(email.strip().lower())
        if reason is not None:
            err = rejected("mailmodo_rejected", f"Mailmodo rejected {request.kind}: {reason}",
                           status=status, body=excerpt)
            outcomes.append(RecordOutcome(record_id, err))
        else:
            outcomes.append(RecordOutcome(record_id, others))
    return outcomes


def interpret(request: HttpRequest, status: int, body: bytes | str | None,
              headers: Mapping[str, str] | None = None) -> list[RecordOutcome]:
    """Per-record outcomes of one Mailmodo response (see the module docstring)."""
    parsed = json_body(body)
    excerpt = body_excerpt(body)
    failed = failed_emails(parsed)
    if status == 207:
        if failed is None:
            return same_outcome(request, rejected(
                "multi_status_unreadable", "Mailmodo answered 207 without a readable errors list",
                status=status, body=excerpt))
        return _per_email(request, failed, status, excerpt, None)
    error = classify_status(status, body, headers)
    if error is None:
        if not (isinstance(parsed, dict) and parsed.get("success") is False):
            return same_outcome(request, None)
        if failed:
            return _per_email(request, failed, status, excerpt, None)
        return same_outcome(request, rejected(
            "mailmodo_rejected", f"Mailmodo {request.kind}: {_message(parsed, 'success: false')}",
            status=status, body=excerpt))
    if status == 400 and request.kind == "addToList/batch":
        if failed:  # only the named emails are bad: the rest go again without them
            resend = with_reason(Retryable(
                "rejected with its batch; the batch's bad emails are dead-lettered",
                status=status, body=excerpt), "batch_rejected")
            return _per_email(request, failed, status, excerpt, resend)
        if "duplicate" in excerpt.lower():
            return same_outcome(request, rejected(
                "batch_duplicate", f"Mailmodo rejected the batch for duplicate emails: "
                f"{_message(parsed, clip(excerpt, 200))}", status=status, body=excerpt))
    return same_outcome(request, error)
