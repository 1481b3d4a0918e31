"""The alert rules and the Grafana dashboard in ops/ against a real worker's /metrics: every
metric family their PromQL uses is exported by the worker (its `# TYPE` line), and the
labelled series they select and group by appear once events flow (deliveries, a retried 503,
a dead-lettered 400, an input dead-lettered at ingest, a drop)."""

from __future__ import annotations

import json
import re

import yaml

from streamproc.dev.sandbox import Fault

from harness import ROOT, produce, wait_for

RULES = ROOT / "ops" / "prometheus" / "streamproc-alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "streamproc-dashboard.json"
METRIC_NAME = re.compile(r"\bstreamproc_[a-z_]+")
TYPE_LINE = re.compile(r"^# TYPE (streamproc_[a-z_]+) (counter|gauge|histogram)$", re.M)
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
FAST = {f"STREAMPROC_{d}_{k}": v for d in ("MAILMODO", "MAILJET", "SEGMENT", "CLEVERTAP")
        for k, v in (("BACKOFF_INITIAL_S", "0.05"), ("BACKOFF_MAX_S", "0.5"), ("LINGER_MS", "20"))}
# series the rules and panels select, with the labels they group by; batch_retries has none
# while every batch succeeds (its TYPE line is checked with the rest). The hold series are
# exported from the start, at 0; the unlabelled ones are in UNLABELLED
SERIES = {
    "streamproc_events_in_total": {"source"},
    "streamproc_routed_total": {"destination"},
    "streamproc_delivered_total": {"destination", "status_class"},
    "streamproc_retried_total": {"destination", "status_class"},
    "streamproc_failed_total": {"destination", "status_class"},
    "streamproc_dead_lettered_total": {"destination", "status_class"},
    "streamproc_dead_lettered_ingest_total": {"source", "reason"},
    "streamproc_dropped_total": {"destination", "reason"},
    "streamproc_requests_total": {"destination", "status"},
    "streamproc_delivery_latency_seconds_bucket": {"destination", "le"},
    "streamproc_request_duration_seconds_bucket": {"destination", "le"},
    "streamproc_consumer_lag": {"topic", "partition"},
    "streamproc_auth_paused": {"destination"},
    "streamproc_destination_paused": {"destination"},
    "streamproc_table_keys": {"table"},
    "streamproc_holds_dropped_total": {"reason", "source", "waits_for"},
    "streamproc_tracks_held_total": {"source", "waits_for"},
    "streamproc_holds_released_total": {"source", "waits_for"},
}
# unlabelled series, exported from the worker's start: name -> value expected here
UNLABELLED = {"streamproc_ready": 1.0}


def used_names() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return {n for e in exprs for n in METRIC_NAME.findall(e)}


def exported(text: str) -> set[str]:
    """Sample names the scrape's `# TYPE` lines declare (counters are declared as x_total)."""
    return {name + suffix for name, kind in TYPE_LINE.findall(text)
            for suffix in SUFFIXES[kind]}


def series_labels(text: str, name: str) -> list[set[str]]:
    return [set(re.findall(r'(\w+)="', m)) for m in
            re.findall(rf"^{re.escape(name)}\{{(.*)\}} \S+$", text, re.M)]


def total(text: str, name: str, **labels: str) -> float:
    out = 0.0
    for m in re.finditer(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", text, re.M):
        if all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            out += float(m.group(2))
    return out


def test_worker_exports_every_metric_the_rules_and_dashboard_use(stack):
    stack.sandbox["mailmodo"].script(
        "/addEvent", [Fault.status(400, body={"success": False, "message": "bad"})])
    stack.sandbox["mailjet"].script("*", [Fault.status(503)])
    w = stack.worker(**FAST)
    w.wait_ready()
    ts = "2026-11-20T10:00:00Z"
    events = [(f"ops-{n}", {"type": "identify", "userId": f"ops-{n}", "messageId": f"ops-i{n}",
                            "timestamp": ts, "traits": {"email": f"ops{n}@example.com"}})
              for n in range(3)]
    events += [
        ("ops-0", {"type": "track", "userId": "ops-0", "messageId": "ops-t0", "timestamp": ts,
                   "event": "Order Completed", "properties": {"order_id": "o-1"}}),
        ("ops-x", {"type": "identify", "userId": "ops-x", "messageId": "ops-ix",
                   "timestamp": ts, "traits": {"firstName": "NoEmail"}}),
        ("ops-bad", b"this is not json"),
    ]
    produce(stack.bootstrap, stack.topic("segment"), events)

    def flowed() -> str | None:
        text = w.metrics()
        done = (total(text, "streamproc_delivered_total", destination="mailmodo") >= 3
                and total(text, "streamproc_delivered_total", destination="mailjet") >= 3
                and total(text, "streamproc_retried_total", destination="mailjet") >= 1
                and total(text, "streamproc_dead_lettered_total", destination="mailmodo") >= 1
                and total(text, "streamproc_dead_lettered_ingest_total", source="segment") >= 1
                and total(text, "streamproc_dropped_total", reason="missing_email") >= 1
                and series_labels(text, "streamproc_consumer_lag"))
        return text if done else None

    text = wait_for(flowed, timeout=120, interval=0.5, what="deliveries, a retry, dead letters")

    used = used_names()
    assert used >= set(SERIES) | set(UNLABELLED) | {"streamproc_batch_retries"}, used
    missing = used - exported(text)
    assert not missing, f"the rules or the dashboard use metrics the worker does not export: " \
                        f"{sorted(missing)}\n{text}"
    for name, labels in SERIES.items():
        found = series_labels(text, name)
        assert found, f"no {name} series in the worker's /metrics:\n{text}"
        assert all(labels <= ls for ls in found), (name, labels, found)
    for name, value in UNLABELLED.items():  # streamproc_ready: the worker is ready by now
        found = re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert [float(v) for v in found] == [value], (name, found)
