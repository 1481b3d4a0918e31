"""Turns free-form JSON traits and properties into the flat scalar values vendor APIs accept
(str, int, float, bool). One place decides how nested objects, lists and nulls are written."""

from __future__ import annotations

import math
from typing import Any, Callable

import orjson

Scalar = str | int | float | bool


def json_text(value: Any) -> str:
    """Compact JSON text of a list or object (keys kept in their order)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def scalar(value: Any) -> Scalar | None:
    """A value as a scalar: str/int/float/bool kept, lists and objects as JSON text, None and
    non-finite numbers dropped (None)."""
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple | dict):
        return json_text(list(value) if isinstance(value, tuple) else value)
    return str(value)


def flatten(values: dict[str, Any], *, prefix: str = "", sep: str = "_") -> dict[str, Scalar]:
    """Nested objects flattened into `parent_child` names; lists as JSON text; None dropped.
    {"plan": {"tier": "pro"}, "tags": ["a"]} -> {"plan_tier": "pro", "tags": '["a"]'}"""
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        put(out, name, value, lambda nested, under: flatten(nested, prefix=under, sep=sep))
    return out


def put(out: dict[str, Scalar], name: str, value: Any,
        nested: Callable[[dict[str, Any], str], dict[str, Scalar]]) -> None:
    """out[name] = scalar(value), unless taken already or None; a nested object goes in as
    the names nested(value, name) gives it (each too only if not taken)."""
    if isinstance(value, dict):
        for sub_name, sub_value in nested(value, name).items():
            out.setdefault(sub_name, sub_value)
        return
    v = scalar(value)
    if v is not None:
        out.setdefault(name, v)


def scalars(values: dict[str, Any]) -> dict[str, Scalar]:
    """Top-level keys only: nested objects and lists as JSON text, None dropped."""
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        v = scalar(value)
        if v is not None:
            out[str(key)] = v
    return out


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def unix_seconds(ts: Any, fallback: float) -> int:
    """An event time as int unix seconds (milliseconds recognised); `fallback` when missing."""
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        ts = fallback
    if ts > 1e11:  # milliseconds
        ts = ts / 1000.0
    return int(ts)
