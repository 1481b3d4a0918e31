"""Small parsing primitives shared by the four input parsers: JSON loading with size and shape
checks, email normalisation, timestamps, ids kept exact (big ints as strings), stable hashes."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from typing import Any

import orjson

from streamproc.core.errors import EventError
from streamproc.core.logs import clip

# Largest integer a JSON consumer using IEEE doubles (JavaScript, many JSON libraries) keeps exact.
MAX_SAFE_INT = 2**53 - 1

_EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]+$")
_NUMERIC_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_BOM = b"\xef\xbb\xbf"


def normalise_email(s: str) -> str:
    """The key an email is stored and looked up under: trimmed and lowercased."""
    return s.strip().lower()


def is_email(s: Any) -> bool:
    """Pragmatic check: one '@', a non-empty local part, a dotted domain, no spaces, <= 254."""
    if not isinstance(s, str):
        return False
    s = s.strip()
    if not s or len(s) > 254 or not _EMAIL_RE.match(s):
        return False
    domain = s.rsplit("@", 1)[1]
    return all(domain.split("."))  # no empty label ("a@b..c", "a@.b")


def _from_number(x: float, what: str) -> float:
    if not math.isfinite(x) or x < 0:
        raise EventError("bad_timestamp", f"{what}: {x!r} is not a usable unix time")
    # seconds < 1e11 (year 5138) <= milliseconds < 1e14 <= microseconds < 1e17 <= nanoseconds
    for limit, div in ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9)):
        if x < limit:
            return x / div
    raise EventError("bad_timestamp", f"{what}: {x!r} is too large for a unix time")


def parse_timestamp(v: Any, what: str = "timestamp") -> float:
    """Unix seconds from seconds/ms/us/ns numbers, numeric strings or ISO-8601 (Z, offsets,
    fractions; naive = UTC). Raises EventError('bad_timestamp') naming `what`."""
    if isinstance(v, bool) or v is None:
        raise EventError("bad_timestamp", f"{what}: {v!r} is not a timestamp")
    if isinstance(v, (int, float)):
        try:
            return _from_number(float(v), what)
        except OverflowError:
            raise EventError("bad_timestamp", f"{what}: number too large") from None
    if isinstance(v, str):
        s = v.strip()
        if _NUMERIC_RE.match(s):
            return _from_number(float(s), what)
        if s[-1:] in ("z", "Z"):
            s = s[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise EventError("bad_timestamp", f"{what}: {v[:64]!r} is not ISO-8601 or unix time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    raise EventError("bad_timestamp", f"{what}: a {type(v).__name__} is not a timestamp")


def required_email(email: Any, missing: str) -> str:
    """An email field that must be present (EventError missing_email with `missing`) and look
    like an address (bad_email)."""
    if email is None or (isinstance(email, str) and not email.strip()):
        raise EventError("missing_email", missing)
    if not is_email(email):
        shown = clip(email, 80) if isinstance(email, str) else json_type(email)
        raise EventError("bad_email", f"email {shown!r} is not an email address")
    return email


def time_or_record_ts(value: Any, what: str, record_ts: float | None, missing: str) -> float:
    """The event's own time field if present, else the Kafka record's timestamp, else
    EventError missing_timestamp with `missing`."""
    if value is not None and value != "":
        return parse_timestamp(value, what)
    if record_ts is not None:
        return parse_timestamp(record_ts, "record timestamp")
    raise EventError("missing_timestamp", missing)


def loads_json(raw: bytes | bytearray | memoryview | str | None, max_bytes: int | None = None,
               *, exact_ints: bool = False) -> Any:
    """Parse JSON with orjson. Reasons: `oversize` (len > max_bytes), `not_json` (empty, bad
    bytes or syntax). With exact_ints, integers beyond 64 bits are re-read exactly (stdlib)."""
    if raw is None:
        raise EventError("not_json", "empty record (no value)")
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if max_bytes is not None and len(data) > max_bytes:
        raise EventError("oversize", f"{len(data)} bytes exceeds the {max_bytes} byte limit")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if not data.strip():  # checked only here: strip() copies the record
            raise EventError("not_json", "empty record") from None
        raise EventError("not_json", f"not JSON: {e}") from None
    if exact_ints and _has_big_float(value):
        # orjson turns integers above 2^64 into (lossy) floats; the stdlib keeps them exact.
        try:
            value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except ValueError as e:
            raise EventError("not_json", f"not JSON: {e}") from None
    return value


def loads_object(raw: bytes | bytearray | memoryview | str | None, max_bytes: int | None = None,
                 *, exact_ints: bool = False) -> dict[str, Any]:
    """loads_json, then require a JSON object (reason `not_object`)."""
    value = loads_json(raw, max_bytes, exact_ints=exact_ints)
    if not isinstance(value, dict):
        raise EventError("not_object", f"expected a JSON object, got {json_type(value)}")
    return value


def json_type(v: Any) -> str:
    """JSON name of a parsed value's type, for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else type(v).__name__


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_big_float(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and abs(v) > MAX_SAFE_INT:
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def stringify_big_ints(value: Any) -> Any:
    """Copy of `value` where integers outside +-(2^53-1) are decimal strings (exact, and
    serialisable by orjson and safe for JavaScript consumers). Other values unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > MAX_SAFE_INT else value
    if isinstance(value, dict):
        return {k: stringify_big_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify_big_ints(v) for v in value]
    return value


def as_id(v: Any, what: str, *, lossy_reason: str = "wrong_type") -> str | None:
    """An identifier as a string: strings as sent (None when blank), integers as exact
    decimal strings, integral floats below 2^53 without '.0'. Null -> None. Other floats
    raise `lossy_reason`; objects, arrays and booleans raise `wrong_type`."""
    if v is None:
        return None
    if isinstance(v, str):
        return v if v.strip() else None
    if isinstance(v, bool) or isinstance(v, (dict, list)):
        raise EventError("wrong_type", f"{what} must be a string or a number, got {json_type(v)}")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer() and abs(v) <= MAX_SAFE_INT:
        return str(int(v))
    if isinstance(v, float) and v.is_integer():
        raise EventError(lossy_reason, f"{what} {v!r} arrived as a float above 2^53: digits lost")
    raise EventError("wrong_type", f"{what} must be a string or an integer, got {v!r}")


def get_object(d: dict[str, Any], key: str, what: str | None = None) -> dict[str, Any]:
    """d[key] when it is an object; {} when absent or null; else EventError `wrong_type`."""
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise EventError("wrong_type", f"{what or key} must be an object, got {json_type(v)}")
    return v


def stable_hash(value: Any, prefix: str = "") -> str:
    """Deterministic id: blake2b-128 of canonical JSON (sorted keys) of `value`."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits
        data = orjson.dumps(stringify_big_ints(value), option=orjson.OPT_SORT_KEYS)
    return prefix + hashlib.blake2b(data, digest_size=16).hexdigest()


def format_time(t: float) -> str:
    """Unix time for ids: '1700000000' when whole, else the shortest exact repr."""
    return str(int(t)) if float(t).is_integer() else repr(float(t))
