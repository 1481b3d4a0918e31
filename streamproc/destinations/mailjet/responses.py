"""Mailjet answers read per record: 200/201/204/304 are success; a 400 "Object properties invalid"
naming properties "not defined" is repaired by defining them (/contactmetadata), then one retry."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from streamproc.destinations.mailjet.mapping import property_definition_requests
from streamproc.destinations.request import HttpRequest, RecordOutcome
from streamproc.destinations.outcomes import (body_excerpt, classify_status, json_body, rejected,
                                              same_outcome)

PROPERTIES_INVALID = "object properties invalid"
NOT_DEFINED = "not defined"


def _property_problems(error_info: Any) -> dict[str, str]:
    """{property: problem} from ErrorInfo.Properties, given as [{name: problem}, ...] (Mailjet's
    documented form) or {name: problem}."""
    if not isinstance(error_info, dict):
        return {}
    listed = error_info.get("Properties")
    items: Iterable[Any] = listed if isinstance(listed, list) else [listed]
    problems: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            problems.update({str(k): str(v) for k, v in item.items()})
    return problems


def undefined_properties(response_body: bytes | str | None,
                         sent_properties: Iterable[str] | None = None) -> list[str] | None:
    """The properties a managecontact 400 says are not defined, or None when the answer is not
    that error. When Mailjet says "Object properties invalid" without naming them, every sent
    property is returned (defining an existing one is harmless); a type mismatch alone is None."""
    parsed = json_body(response_body)
    text = body_excerpt(response_body).lower()
    problems = _property_problems(parsed.get("ErrorInfo")) if isinstance(parsed, dict) else {}
    names = [name for name, problem in problems.items() if NOT_DEFINED in problem.lower()]
    if names:
        return names
    if problems:  # properties named, none undefined (e.g. "Property type does not match")
        return None
    if PROPERTIES_INVALID in text or f"property {NOT_DEFINED}" in text:
        return list(sent_properties or [])
    return None


def property_already_defined(status: int, body: bytes | str | None) -> bool:
    """A /contactmetadata answer meaning the property exists already (e.g. another worker made it)."""
    return status in (400, 409) and "already exists" in body_excerpt(body).lower()


def sent_properties(request: HttpRequest) -> dict[str, Any]:
    sent = request.body.get("Properties") if isinstance(request.body, dict) else None
    return sent if isinstance(sent, dict) else {}


def repair(request: HttpRequest, status: int, body: bytes | str | None) -> list[HttpRequest]:
    """The engine's repair hook: for a managecontact 400 about undefined properties, the
    /contactmetadata requests defining them (typed by the values sent); else []. The engine sends
    them, then retries the original once."""
    if status != 400 or request.kind != "managecontact":
        return []
    names = undefined_properties(body, sent_properties(request))
    return property_definition_requests(request, names) if names else []


def interpret(request: HttpRequest, status: int, body: bytes | str | None,
              headers: Mapping[str, str] | None = None) -> list[RecordOutcome]:
    """Per-record outcomes of a Mailjet response. An undefined-property 400 is a Permanent with
    reason "undefined_properties" and `.properties` (names to define before one retry)."""
    error = classify_status(status, body, headers)
    if status == 400 and request.kind == "managecontact":
        names = undefined_properties(body, sent_properties(request))
        if names is not None:
            err = rejected("undefined_properties",
                           f"Mailjet properties not defined: {', '.join(names) or '(unnamed)'}",
                           status=status, body=body_excerpt(body))
            err.properties = names  # type: ignore[attr-defined]
            return same_outcome(request, err)
    return same_outcome(request, error)
