"""Times on the command line: ISO-8601, unix seconds or milliseconds, `now` or an age (30m,
2h, 1d) read as unix seconds; printed back as UTC; and a checked since/until window."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from streamproc.ops.command_errors import UsageError

_AGE = re.compile(r"^-?\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
MS_THRESHOLD = 10**11  # numbers above are unix milliseconds


def parse_time(text: str, *, now: float | None = None, option: str = "time") -> float:
    """Unix seconds from ISO-8601 (a naive time is UTC; a date alone is its midnight UTC),
    unix seconds or milliseconds, `now`, or an age such as 30m, 2h, 1d, 1w (that long ago)."""
    s = (text or "").strip()
    now = time.time() if now is None else now
    if not s:
        raise UsageError(f"{option}: empty time")
    if s.lower() == "now":
        return now
    m = _AGE.match(s)
    if m:
        return now - float(m.group(1)) * _AGE_UNITS[m.group(2).lower()]
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise UsageError(f"{option}: {text!r} is not a valid time")
        return value / 1000.0 if value >= MS_THRESHOLD else value
    iso = s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise UsageError(
            f"{option}: cannot read {text!r} as a time (use ISO-8601 such as "
            f"2026-11-20T10:00:00Z, unix seconds, or an age such as 30m, 2h, 1d)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def format_time(ts: float | None) -> str:
    """Unix seconds as `2026-11-20T10:00:00Z` (UTC, whole seconds); `-` when unknown."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "-"


def time_window(since: str | None, until: str | None, *, now: float | None = None,
                names: tuple[str, str] = ("--since", "--until"),
                ) -> tuple[float | None, float | None]:
    """(since, until) in unix seconds, either None when not given; UsageError when reversed."""
    now = time.time() if now is None else now
    lo = parse_time(since, now=now, option=names[0]) if since else None
    hi = parse_time(until, now=now, option=names[1]) if until else None
    if lo is not None and hi is not None and hi < lo:
        raise UsageError(f"{names[1]} ({format_time(hi)}) is before {names[0]} "
                         f"({format_time(lo)})")
    return lo, hi
