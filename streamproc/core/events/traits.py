"""Segment trait names: reserved identify traits canonicalised to the Segment spec spelling
(camelCase, or snake_case where the spec itself uses it), and snake_case for Engage audience names."""

from __future__ import annotations

import re
from typing import Any

# Segment spec names of the reserved identify traits (top level, and inside address/company).
RESERVED_TRAITS = (
    "address", "age", "avatar", "birthday", "company", "createdAt", "description", "email",
    "firstName", "gender", "id", "lastName", "name", "phone", "title", "username", "website",
)
ADDRESS_TRAITS = ("city", "country", "postalCode", "state", "street")
COMPANY_TRAITS = ("name", "id", "industry", "employee_count", "plan")


_SEPARATORS = re.compile(r"[\s_\-]+")
_FOLDED: dict[str, str] = {}  # trait names recur: folded once (bounded, cleared when full)
# Longer names are folded each time, not kept: the cache is bounded in bytes, not only in
# entries (10,000 entries of 30 kB names, one per 32 kB message, would keep ~600 MB alive).
FOLD_CACHED_LEN = 128


def _fold(name: str) -> str:
    """Spelling-insensitive form: 'first_name', 'First Name', 'firstName' -> 'firstname'."""
    folded = _FOLDED.get(name)
    if folded is None:
        folded = _SEPARATORS.sub("", name).lower()
        if len(name) <= FOLD_CACHED_LEN:
            if len(_FOLDED) >= 10_000:
                _FOLDED.clear()
            _FOLDED[name] = folded
    return folded


_TOP = {_fold(n): n for n in RESERVED_TRAITS}
_ADDRESS = {_fold(n): n for n in ADDRESS_TRAITS}
_COMPANY = {_fold(n): n for n in COMPANY_TRAITS}


def _canonicalise(d: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        canon = table.get(_fold(key))
        if canon is None or key == canon:  # not reserved, or already the spec spelling
            out[key] = value
        elif canon not in d and canon not in out:  # a variant: only if no better one
            out[canon] = value
    return out


def reserved_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Copy of `traits` with reserved trait names in Segment spec spelling, whatever case they
    arrived in (first_name, FirstName, "first name" -> firstName; address.postal_code ->
    address.postalCode; company.employeeCount -> company.employee_count). The exact spec
    spelling wins over a variant; among variants the first one wins. Other keys untouched."""
    if not isinstance(traits, dict):
        return {}
    out = _canonicalise(traits, _TOP)
    if isinstance(out.get("address"), dict):
        out["address"] = _canonicalise(out["address"], _ADDRESS)
    if isinstance(out.get("company"), dict):
        out["company"] = _canonicalise(out["company"], _COMPANY)
    return out


def reserved_trait(traits: dict[str, Any], name: str) -> Any:
    """reserved_traits(traits).get(name) for a top-level reserved trait, without the copy:
    the spec spelling if present, else the first variant spelling, else None."""
    if name in traits:
        return traits[name]
    folded = _fold(name)
    for key, value in traits.items():
        if _fold(key) == folded:
            return value
    return None


def snake_case(name: str) -> str:
    """Engage audience / computed trait key: 'High Value Users' and 'highValueUsers' ->
    'high_value_users'; 'HTTPServer' -> 'http_server'; already snake_case is unchanged."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name.strip())
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"[\W_]+", "_", s)
    return s.strip("_").lower()
