"""The status page: /status (a self-contained HTML page that polls /status.json every 2 s and
draws delivered/s per destination) and /status.json (what this worker sees: per-destination
counters, drops by reason, request rate, auth pause, outage pause, lag; assigned partitions,
readiness).

Counters are this worker's own (each worker of the group exports its share, as /metrics
does). A faust timer samples the counters every SAMPLE_INTERVAL_S into a ring buffer, so
rates and the chart history are there as soon as the page loads."""

from __future__ import annotations

import time
from collections import deque
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from streamproc.http import observe, trace_view

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

SAMPLE_INTERVAL_S = 2.0
HISTORY_S = 300.0  # the chart's window
RATE_WINDOW_S = 60.0  # requests/s "over the last minute"

COUNTERS = ("routed", "delivered", "retried", "failed", "dead_lettered")


class Sampler:
    """Ring buffer of (unix time, {destination: {"delivered": n, "requests": n}})."""

    def __init__(self, maxlen: int = int(HISTORY_S / SAMPLE_INTERVAL_S) + 1,
                 start: float | None = None) -> None:
        self.samples: deque[tuple[float, dict[str, dict[str, float]]]] = deque(maxlen=maxlen)
        # the counters start at 0 with the process: the first rates need no earlier sample
        self.samples.append((time.time() if start is None else start, {}))

    def sample(self, totals: dict[str, dict[str, float]], now: float | None = None) -> None:
        self.samples.append((time.time() if now is None else now, totals))

    def rate(self, dest: str, what: str, now: float, current: float,
             window: float = RATE_WINDOW_S) -> float:
        """Per second over the last `window` seconds, from the oldest sample inside it."""
        for t, totals in self.samples:
            if now - t <= window and now - t > 0:
                return max(0.0, current - totals.get(dest, {}).get(what, 0.0)) / (now - t)
        return 0.0

    def history(self, destinations: list[str]) -> dict[str, Any]:
        """Delivered/s between successive samples, per destination (for the chart)."""
        points = list(self.samples)
        t_out: list[float] = []
        series: dict[str, list[float]] = {d: [] for d in destinations}
        for (t0, a), (t1, b) in zip(points, points[1:]):
            dt = t1 - t0
            if dt <= 0:
                continue
            t_out.append(round(t1, 3))
            for d in destinations:
                delta = b.get(d, {}).get("delivered", 0.0) - a.get(d, {}).get("delivered", 0.0)
                series[d].append(round(max(0.0, delta) / dt, 3))
        return {"interval_s": SAMPLE_INTERVAL_S, "t": t_out, "delivered_per_s": series}


def _sum_by(values: dict[tuple[str, ...], float], index: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in values.items():
        out[labels[index]] = out.get(labels[index], 0.0) + v
    return out


def totals(snapshot: dict[str, dict[tuple[str, ...], Any]]) -> dict[str, dict[str, float]]:
    """{destination: {"delivered": n, "requests": n}} from a metrics snapshot."""
    delivered = _sum_by(snapshot["delivered"], 0)
    requests = _sum_by(snapshot["requests"], 0)
    return {d: {"delivered": delivered.get(d, 0.0), "requests": requests.get(d, 0.0)}
            for d in set(delivered) | set(requests)}


def _int(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def holds_view(snap: dict[str, dict[tuple[str, ...], Any]]) -> dict[str, dict[str, Any]]:
    """Inputs waiting for state, by "source/waits_for": held now (this worker's partitions, as
    of the sweeper's last pass), held, released, expired and overflow since start."""
    out: dict[str, dict[str, Any]] = {}
    for metric, field in (("held_now", "held_now"), ("tracks_held", "held"),
                          ("holds_released", "released")):
        for (source, reason), v in snap[metric].items():
            out.setdefault(f"{source}/{reason}", {})[field] = _int(v)
    for (why, source, reason), v in snap["holds_dropped"].items():
        out.setdefault(f"{source}/{reason}", {})[why] = _int(v)
    return out


def status_doc(rt: Runtime, now: float | None = None) -> dict[str, Any]:
    from streamproc.http.web import is_ready

    now = time.time() if now is None else now
    rt.metrics.refresh(rt)
    snap = rt.metrics.snapshot()
    sampler = _sampler(rt)
    current = totals(snap)
    sums = {name: _sum_by(snap[name], 0) for name in COUNTERS}
    lag_by_topic: dict[str, int] = {}
    for (topic, _partition), lag in snap["consumer_lag"].items():
        lag_by_topic[topic] = lag_by_topic.get(topic, 0) + int(lag)
    destinations: dict[str, Any] = {}
    for slug, spec in rt.topology.destinations.items():
        dropped: dict[str, int | float] = {}
        for (_source, dest, reason), v in sorted(snap["dropped"].items()):
            if dest == slug:
                dropped[reason] = _int(dropped.get(reason, 0) + v)
        cur = current.get(slug, {})
        destinations[slug] = {
            "enabled": spec.enabled,
            **{name: _int(sums[name].get(slug, 0.0)) for name in COUNTERS},
            "dropped": dropped,
            "dropped_total": _int(sum(dropped.values())),
            "requests": _int(cur.get("requests", 0.0)),
            "requests_per_s": round(sampler.rate(slug, "requests", now,
                                                 cur.get("requests", 0.0)), 3),
            "delivered_per_s": round(sampler.rate(slug, "delivered", now,
                                                  cur.get("delivered", 0.0)), 3),
            "auth_paused": bool(snap["auth_paused"].get((slug,), 0)),
            "outage": _outage(rt, slug),  # paused on transient failures (delivery/outage.py)
            "waiting_records": lag_by_topic.get(spec.sink.name, 0),
            "sink_topic": spec.sink.name,
            "lag": {spec.sink.name: lag_by_topic.get(spec.sink.name, 0)},
            "failures": trace_view.recent_failures(rt, slug),  # latest failed attempts
        }
    ready, detail = is_ready(rt)
    partitions: dict[str, list[int]] = {}
    for tp in observe.assigned_source_partitions(rt):
        partitions.setdefault(tp.topic, []).append(tp.partition)
    settings = rt.settings
    return {
        "time": round(now, 3),
        "worker": {
            "app_id": settings.app_id,
            "client_id": settings.client_id,
            "ready": ready,
            "detail": detail,
            "rebalances": int(getattr(rt.app, "rebalancing_count", 0) or 0),
            "assigned_partitions": sum(len(p) for p in partitions.values()),
            "partitions": partitions,
            "lag": lag_by_topic,
            "tables": observe.table_key_counts(rt),
            "events_in": {f"{src}/{typ}": _int(v)
                          for (src, typ), v in sorted(snap["events_in"].items())},
            "dead_lettered_ingest": {f"{src}/{reason}": _int(v) for (src, reason), v
                                     in sorted(snap["dead_lettered_ingest"].items())},
            "holds": holds_view(snap),
        },
        "destinations": destinations,
        "history": sampler.history(list(rt.topology.destinations)),
    }


def _outage(rt: Runtime, slug: str) -> dict[str, Any]:
    """The destination's outage pause; its last error scrubbed as outcome texts are (it
    quotes the response: emails, secret fields)."""
    deliverer = rt.deliverers.get(slug, {}).get("deliverer")
    if deliverer is None:
        return {"paused": False}
    doc = deliverer.outage.describe()
    if doc.get("last_error"):
        from streamproc.worker.scrub import ERROR_CHARS

        doc["last_error"] = _scrubber(rt)(doc["last_error"], ERROR_CHARS)
    return doc


def _scrubber(rt: Runtime) -> Any:
    """The worker's outcome scrubber, or one like it when outcomes are off."""
    from streamproc.worker.scrub import outcome_scrubber

    return rt.outcomes.scrub if rt.outcomes is not None else outcome_scrubber(rt.settings)


def page_html() -> bytes:
    return resources.files("streamproc").joinpath("static/status.html").read_bytes()


def install(rt: Runtime) -> None:
    """The sampling timer, and the two pages (through the web hooks web.register runs)."""
    sampler = _sampler(rt)

    @rt.app.timer(SAMPLE_INTERVAL_S, name="streamproc.status.sample")
    async def sample_status() -> None:
        sampler.sample(totals(rt.metrics.snapshot()))

    rt.web_hooks.append(register_pages)


def _sampler(rt: Runtime) -> Sampler:
    if rt.status_sampler is None:
        rt.status_sampler = Sampler()
    return rt.status_sampler


def register_pages(rt: Runtime) -> None:
    from faust.web import Request, Response, View

    app = rt.app

    @app.page("/status")
    class StatusPage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(page_html(), content_type="text/html",
                              headers={"Cache-Control": "no-store"})

    @app.page("/status.json")
    class StatusJson(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(orjson.dumps(status_doc(rt)), content_type="application/json",
                              headers={"Cache-Control": "no-store"})
