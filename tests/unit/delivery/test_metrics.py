"""Metrics: private registries, snapshot numbers, Prometheus text."""

from __future__ import annotations

from streamproc.core.metrics import Metrics, status_class


def test_snapshot_counts_by_label_tuple():
    m = Metrics()
    for _ in range(3):
        m.dropped.labels("segment", "mailmodo", "missing_email").inc()
    m.routed.labels("mailjet").inc(2)
    m.auth_paused.labels("clevertap").set(1)
    m.batch_size.labels("segment").observe(10)
    m.batch_size.labels("segment").observe(30)
    snap = m.snapshot()
    assert snap["dropped"][("segment", "mailmodo", "missing_email")] == 3
    assert snap["routed"] == {("mailjet",): 2}
    assert snap["auth_paused"] == {("clevertap",): 1}
    assert snap["batch_size"] == {("segment",): {"count": 2, "sum": 40}}
    assert snap["delivered"] == {}


def test_registries_are_private():
    a, b = Metrics(), Metrics()
    a.events_in.labels("segment", "identify").inc()
    assert b.snapshot()["events_in"] == {}
    assert a.snapshot()["events_in"] == {("segment", "identify"): 1}


def test_render_is_prometheus_text():
    m = Metrics()
    m.requests.labels("segment", "batch", "200").inc()
    m.consumer_lag.labels("sink.segment", "0").set(42)
    text = m.render().decode()
    assert 'streamproc_requests_total{destination="segment",kind="batch",status="200"} 1.0' in text
    assert 'streamproc_consumer_lag{partition="0",topic="sink.segment"} 42.0' in text
    assert "# TYPE streamproc_delivery_latency_seconds histogram" in text


def test_refresh_runs_refreshers_and_survives_a_failing_one():
    m = Metrics()
    m.on_refresh(lambda runtime: 1 / 0)
    m.on_refresh(lambda runtime: m.table_keys.labels("contacts").set(len(runtime)))
    m.refresh([1, 2, 3])
    assert m.snapshot()["table_keys"] == {("contacts",): 3}


def test_status_class():
    assert [status_class(s) for s in (200, 207, 429, 503, None)] == [
        "2xx", "2xx", "4xx", "5xx", "network"]
