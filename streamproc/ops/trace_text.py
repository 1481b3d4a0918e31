"""The text timeline `streamproc trace` prints: one line per outcome of each input, then where
it ended per destination."""

from __future__ import annotations

import time
from typing import Any

import orjson


def _when(t: float | None) -> str:
    if not t:
        return "-" * 23
    frac = f"{t % 1:.3f}"[1:]
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + frac


def rows_of(value: Any, n: int) -> list[Any]:
    """The rows of n items of a route outcome's `to` (n=3) or `drop` (n=2) list."""
    if not isinstance(value, list):
        return []
    return [r for r in value if isinstance(r, (list, tuple)) and len(r) == n
            and isinstance(r[0], str)]


def own_error(d: dict[str, Any]) -> Any:
    """A failed attempt's error when its outcome has no body to show instead (none, or a
    request of several records, whose body lists every record's data and errors)."""
    return d.get("err") if not d.get("b") else None


def describe(d: dict[str, Any]) -> tuple[str, str]:
    """(what, detail) of one outcome, for a timeline line."""
    kind = d.get("k")
    if kind == "in":
        return "ingested", f"{d.get('src')} input {d.get('tp')}[{d.get('p')}] offset {d.get('o')}"
    if kind == "route":
        parts = [f"-> {dest} {op} (delivery id {str(rid or '')[:12]})"
                 for dest, rid, op in rows_of(d.get("to"), 3)]
        parts += [f"dropped for {dest}: {reason}" for dest, reason in rows_of(d.get("drop"), 2)]
        if d.get("held"):
            parts.append("held: waiting for state another topic brings (an identify or a CleverTap ID)")
        return f"routed ({d.get('st')})", "; ".join(parts) or "nothing to send"
    if kind == "try":
        status = f"HTTP {d['s']}" if d.get("s") else "no answer"
        result = {"ok": "delivered", "retry": "will retry", "failed": "refused",
                  "auth": "credentials refused (destination paused)"}.get(d.get("r"), d.get("r"))
        body = f"  response: {d['b']}" if d.get("b") else ""
        error = f": {own}" if (own := own_error(d)) else ""
        return (f"attempt {d.get('n')}",
                f"{d.get('d')} {d.get('req')} -> {status} {result}{error}{body}")
    if kind == "seen":
        return "already sent", (f"{d.get('d')}: delivery id {str(d.get('id') or '')[:12]} is "
                                "in the delivery ledger; not sent again")
    if kind == "dead":
        if d.get("stage") == "ingest":
            return "dead-lettered", f"at ingest: {d.get('r')} ({d.get('msg', '')})"
        if d.get("stage") == "routing":
            return "dead-lettered", (f"at routing ({d.get('st')}): {d.get('r')} "
                                     f"({d.get('msg', '')}); see streamproc dlq")
        return "dead-lettered", (f"{d.get('d')}: {d.get('r')} (HTTP {d.get('s')}, "
                                 f"{d.get('n')} attempt(s)); see streamproc dlq")
    return str(kind), orjson.dumps({k: v for k, v in d.items() if k not in "kmt"}).decode()


def outcome_line(d: dict[str, Any]) -> str:
    what, detail = describe(d)
    return f"  {_when(d.get('t'))}  {what:<15} {detail}"


def result_line(dests: dict[str, Any]) -> str:
    parts = []
    for dest, st in sorted(dests.items()):
        extra = [str(st[k]) for k in ("reason", "error") if st.get(k)]
        if st.get("status"):
            extra.append(f"HTTP {st['status']}")
        if st.get("attempts"):
            extra.append(f"{st['attempts']} attempt(s)")
        if st.get("records"):
            extra.append(f"{st.get('delivered', 0)} of {st['records']} records delivered")
        name = "input" if dest == "*" else dest
        parts.append(f"{name} {st.get('state')}" + (f" ({', '.join(extra)})" if extra else ""))
    return "  result: " + (" · ".join(parts) if parts else "no routing decision yet")


def render_text(query: str, found: list[dict[str, Any]]) -> str:
    if not found:
        return (f"no outcomes for {query!r}: not a message id, email or userId seen on the "
                "outcomes topic (within its retention, on workers with STREAMPROC_OUTCOMES on)\n")
    lines = [f"trace {query}: {len(found)} input(s), newest first" if len(found) > 1
             else f"trace {query}"]
    for tl in found:
        who = " · ".join(str(x) for x in (tl.get("source"), tl.get("user_id") and
                                          f"user {tl['user_id']}", tl.get("email")) if x)
        lines.append("")
        lines.append(f"input {tl['message_id']}" + (f"  ({who})" if who else ""))
        lines += [outcome_line(d) for d in tl["events"]]
        lines.append(result_line(tl["destinations"]))
    return "\n".join(lines) + "\n"
