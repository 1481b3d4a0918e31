"""The demo of `streamproc dev`: produce the bundled sample events, wait until the worker has
routed and delivered them, and print a summary per destination (from the worker's metrics)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.records import DESTINATIONS
from streamproc.dev.samples import send_samples


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """{metric name: {sorted label items: value}} from a worker's /metrics."""
    text = httpx.get(url + "/metrics", timeout=5).text
    out: dict[str, dict[tuple, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def summary(metrics: dict[str, dict[tuple, float]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {d: {"routed": 0, "delivered": 0, "dead_lettered": 0,
                                           "dropped": defaultdict(int)} for d in DESTINATIONS}
    for name, key in (("streamproc_routed_total", "routed"),
                      ("streamproc_delivered_total", "delivered"),
                      ("streamproc_dead_lettered_total", "dead_lettered")):
        for labels, v in metrics.get(name, {}).items():
            dest = dict(labels).get("destination")
            if dest in rows:
                rows[dest][key] += int(v)
    for labels, v in metrics.get("streamproc_dropped_total", {}).items():
        lab = dict(labels)
        if lab.get("destination") in rows:
            rows[lab["destination"]]["dropped"][lab["reason"]] += int(v)
    return rows


def held_now(metrics: dict[str, dict[tuple, float]]) -> dict[str, int]:
    """Inputs held for state now, by "source/waits_for": held - released - expired - overflow
    (streamproc/core/routing/holds.py)."""
    out: dict[str, int] = defaultdict(int)
    for name, sign in (("streamproc_tracks_held_total", 1), ("streamproc_holds_released_total", -1),
                       ("streamproc_holds_dropped_total", -1)):
        for labels, v in metrics.get(name, {}).items():
            lab = dict(labels)
            out[f"{lab.get('source')}/{lab.get('waits_for')}"] += sign * int(v)
    return {k: v for k, v in sorted(out.items()) if v}


def settled(rows: dict[str, dict[str, Any]]) -> bool:
    return all(r["delivered"] + r["dead_lettered"] >= r["routed"] for r in rows.values())


def format_summary(rows: dict[str, dict[str, Any]], ingest_dlq: int,
                   held: dict[str, int] | None = None) -> str:
    lines = [f"{'destination':<12} {'routed':>7} {'delivered':>10} {'dead-lettered':>14}  dropped (reason: count)",
             "-" * 86]
    for dest, r in rows.items():
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(r["dropped"].items())) or "-"
        lines.append(f"{dest:<12} {r['routed']:>7} {r['delivered']:>10} {r['dead_lettered']:>14}  {dropped}")
    lines.append(f"inputs dead-lettered at ingest (streamproc.dlq.ingest): {ingest_dlq}")
    if held is not None:
        lines.append("held for state (decided when it arrives, or after STREAMPROC_HOLD_SECONDS): "
                     + (", ".join(f"{k}: {v}" for k, v in held.items()) or "-"))
    return "\n".join(lines)


def run_demo(settings: Settings, topology: Topology, url: str, sandbox: Any = None,
             timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    for phase in (1, 2):  # identifies and triggers first, then the email activity about them
        counts = asyncio.run(send_samples(settings, topology, phase=phase))
        print(f"[demo] phase {phase}: produced {sum(counts.values())} sample events to "
              f"{', '.join(sorted(counts))}", file=sys.stderr, flush=True)
        metrics = wait_until_settled(url, timeout)
    rows = summary(metrics)
    ingest_dlq = int(sum(metrics.get("streamproc_dead_lettered_ingest_total", {}).values()))
    where = "sandbox APIs" if sandbox is not None else "the configured APIs"
    print(f"\nstreamproc demo: sample events delivered to {where}\n"
          + format_summary(rows, ingest_dlq, held_now(metrics))
          + f"\n\nstatus page: {url}/status   metrics: {url}/metrics\n", flush=True)
    return rows


def wait_until_settled(url: str, timeout: float) -> dict[str, dict[tuple, float]]:
    """Scrape until every routed record was delivered or dead-lettered and nothing moved for
    two seconds (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    metrics: dict[str, dict[tuple, float]] = {}
    stable_since = None
    last = None
    while time.monotonic() < deadline:
        metrics = scrape(url)
        rows = summary(metrics)
        snapshot = repr(rows)
        if settled(rows) and snapshot == last:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2.0:
                break
        else:
            stable_since = None
        last = snapshot
        time.sleep(0.5)
    return metrics
