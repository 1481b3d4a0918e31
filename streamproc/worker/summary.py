"""The periodic summary line: one INFO record per worker every STREAMPROC_LOG_SUMMARY_INTERVAL_S
(0 = off) saying what happened, for the last interval and since the worker started:

    summary last 60s/since start: in=120/4500 routed=mailmodo:80/3000,segment:40/1500
    delivered=mailmodo:79/2990,segment:40/1500 dropped=missing_email:3/50,unknown_user:0/4
    dead_lettered=ingest:0/2,delivery:1/7 held=2/30 holds_dropped=0/4 lag=12

(one line; `a/b` is a in the last interval, b since start). With LOG_FORMAT=json the same
numbers are in the record's `summary` field (streamproc.core.logs.JSON_FIELDS):

    {"interval_s": 60.0, "lag": 12,
     "interval": {"in": 120, "routed": {...}, "delivered": {...}, "dropped": {...},
                  "dead_lettered": {"ingest": 0, "delivery": 1}, "held": 2,
                  "holds_dropped": 0},
     "total": {... the same keys since start ...}}

Everything comes from the worker's Metrics (its own share of the group, like /metrics):
in = streamproc_events_in_total; routed = streamproc_routed_total by destination; delivered =
streamproc_delivered_total by destination; dropped = streamproc_dropped_total by reason;
dead_lettered = streamproc_dead_lettered_ingest_total (ingest) and
streamproc_dead_lettered_total (delivery); held = streamproc_tracks_held_total (inputs
held for state another topic updates, STREAMPROC_HOLD_SECONDS, all sources); holds_dropped =
streamproc_holds_dropped_total over both reasons, expired and overflow (expired ones are in
dropped too, with their reason); lag = streamproc_consumer_lag summed over the partitions this
worker holds, refreshed (streamproc.http.observe) just before; paused=mailjet:400 (JSON "paused":
{destination: records waiting}) lists the destinations paused on an outage now, only while
there is one (streamproc_destination_paused, _waiting_records). The interval numbers are differences
of two Metrics.snapshot()s; counters start at 0 with the process, so the first interval counts
from the start."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

log = logging.getLogger("streamproc.summary")  # documented name, kept

Snapshot = dict[str, dict[tuple[str, ...], Any]]
SCALARS = ("in", "held", "holds_dropped")  # single numbers; the other entries are by name


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else round(v, 3)


def _by(snapshot: Snapshot | None, metric: str, index: int | None,
        seed: Iterable[str] = ()) -> dict[str, float]:
    """Sum of a counter's samples by one label (index), or over all labels (index None: {""})."""
    out: dict[str, float] = {key: 0.0 for key in seed}
    for labels, value in (snapshot or {}).get(metric, {}).items():
        key = "" if index is None else labels[index]
        out[key] = out.get(key, 0.0) + float(value)
    return out


def _counts(snapshot: Snapshot | None, destinations: Iterable[str]) -> dict[str, Any]:
    dests = list(destinations)
    return {
        "in": _by(snapshot, "events_in", None, [""]),
        "routed": _by(snapshot, "routed", 0, dests),
        "delivered": _by(snapshot, "delivered", 0, dests),
        "dropped": _by(snapshot, "dropped", 2),
        "dead_lettered": {"ingest": sum(_by(snapshot, "dead_lettered_ingest", None).values()),
                          "delivery": sum(_by(snapshot, "dead_lettered", None).values())},
        "held": _by(snapshot, "tracks_held", None, [""]),
        "holds_dropped": _by(snapshot, "holds_dropped", None, [""]),
    }


def build_summary(previous: Snapshot | None, current: Snapshot, interval_s: float,
                  destinations: Iterable[str] = ()) -> dict[str, Any]:
    """The summary from two Metrics.snapshot()s: `previous` at the start of the interval (None:
    the process start, all counters 0) and `current`. `destinations` are always listed under
    routed and delivered, with 0 when nothing happened; reasons and other destinations appear
    once counted. JSON-friendly: str keys, numbers (ints when whole)."""
    dests = list(destinations)
    before, now = _counts(previous, dests), _counts(current, dests)
    interval: dict[str, Any] = {}
    total: dict[str, Any] = {}
    for name, values in now.items():
        keys = sorted(set(values) | set(before[name]),  # destinations in topology order first
                      key=lambda k: (dests.index(k) if k in dests else len(dests), k))
        if name == "dead_lettered":
            keys = ["ingest", "delivery"]
        interval[name] = {k: _num(max(0.0, values.get(k, 0.0) - before[name].get(k, 0.0)))
                          for k in keys}
        total[name] = {k: _num(values.get(k, 0.0)) for k in keys}
    for name in SCALARS:
        interval[name], total[name] = interval[name][""], total[name][""]
    lag = sum(float(v) for v in current.get("consumer_lag", {}).values())
    out = {"interval_s": _num(round(interval_s, 1)), "lag": _num(lag),
           "interval": interval, "total": total}
    waiting = current.get("destination_waiting_records", {})
    paused = {d: _num(waiting.get((d,), 0.0))
              for (d,), on in current.get("destination_paused", {}).items() if on}
    if paused:
        out["paused"] = paused
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The compact text line: `key=last/total`, dicts as `name:last/total,...` ("-" if empty)."""
    last, total = summary["interval"], summary["total"]

    def pair(a: Any, b: Any) -> str:
        return f"{a}/{b}"

    parts = [f"in={pair(last['in'], total['in'])}"]
    for name in ("routed", "delivered", "dropped", "dead_lettered"):
        items = ",".join(f"{k}:{pair(v, total[name][k])}" for k, v in last[name].items())
        parts.append(f"{name}={items or '-'}")
    for name in ("held", "holds_dropped"):
        parts.append(f"{name}={pair(last[name], total[name])}")
    parts.append(f"lag={summary['lag']}")
    if summary.get("paused"):
        parts.append("paused=" + ",".join(f"{d}:{n}" for d, n in summary["paused"].items()))
    return f"summary last {summary['interval_s']}s/since start: " + " ".join(parts)


def log_summary(summary: dict[str, Any], logger: logging.Logger = log) -> None:
    """One INFO record: the text line as the message, the numbers as the `summary` extra
    field (a JSON object with LOG_FORMAT=json)."""
    logger.info("%s", format_summary(summary), extra={"summary": summary})


class SummaryLogger:
    """Keeps the previous snapshot and its time; emit() logs the summary since then."""

    def __init__(self, rt: Runtime, clock: Any = time.monotonic) -> None:
        self.rt = rt
        self.clock = clock
        self.previous: Snapshot | None = None  # None: the counters' own start (all 0)
        self.since = clock()

    def emit(self) -> dict[str, Any]:
        rt = self.rt
        rt.metrics.refresh(rt)  # consumer_lag from what the consumer holds (no broker call)
        current = rt.metrics.snapshot()
        now = self.clock()
        summary = build_summary(self.previous, current, now - self.since,
                                rt.topology.enabled)
        self.previous, self.since = current, now
        log_summary(summary)
        return summary


def install(rt: Runtime) -> SummaryLogger | None:
    """A faust timer (every worker, not only the leader) logging the summary every
    settings.log_summary_interval_s; nothing when it is 0. Called once from create_app."""
    interval = rt.settings.log_summary_interval_s
    if not interval:
        return None
    summary = SummaryLogger(rt)
    rt.log_summary = summary

    @rt.app.timer(interval, name="streamproc.summary.log")
    async def log_worker_summary() -> None:
        try:
            summary.emit()
        except Exception:  # the summary must never stop the timer (or the worker)
            log.exception("worker summary failed")

    return summary
