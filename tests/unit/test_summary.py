"""The periodic worker summary (streamproc.summary): numbers for the last interval and since
start from two Metrics snapshots, the text line, the JSON `summary` field through the real
formatter, the timer installer, and the STREAMPROC_LOG_SUMMARY_INTERVAL_S setting."""

from __future__ import annotations

import asyncio
import io
import logging
from types import SimpleNamespace

import orjson
import pytest

from streamproc.config.settings import load_settings
from streamproc.core.errors import ConfigError
from streamproc.core.logs import setup_logging
from streamproc.core.metrics import Metrics
from streamproc.worker import summary


pytestmark = pytest.mark.usefixtures("restore_logging")  # tests/conftest.py


def _first_interval(m: Metrics) -> None:
    m.events_in.labels("segment", "identify").inc(3)
    m.events_in.labels("mailjet", "open").inc(2)
    m.routed.labels("mailmodo").inc(2)
    m.routed.labels("segment").inc(1)
    m.delivered.labels("mailmodo", "2xx").inc(2)
    m.dropped.labels("segment", "mailmodo", "missing_email").inc(1)
    m.dead_lettered_ingest.labels("segment", "bad_json").inc(1)
    m.failed.labels("segment", "5xx").inc(4)  # not part of the summary
    m.tracks_held.labels("segment", "unknown_user").inc(2)
    m.holds_released.labels("segment", "unknown_user").inc(1)  # not part of the summary


def _second_interval(m: Metrics) -> None:
    m.events_in.labels("segment", "track").inc(5)
    m.routed.labels("mailmodo").inc(4)
    m.delivered.labels("mailmodo", "2xx").inc(3)
    m.delivered.labels("segment", "2xx").inc(1)
    m.dropped.labels("segment", "mailmodo", "missing_email").inc(2)
    m.dropped.labels("mailjet", "segment", "unknown_user").inc(1)
    m.dead_lettered.labels("mailmodo", "4xx").inc(1)
    m.consumer_lag.labels("t.input.segment", "0").set(7)
    m.consumer_lag.labels("t.sink.mailmodo", "3").set(5)
    m.tracks_held.labels("mailmodo", "not_identified").inc(1)
    m.holds_dropped.labels("expired", "segment", "unknown_user").inc(1)
    m.holds_dropped.labels("overflow", "mailmodo", "no_clevertap_id").inc(2)


def test_first_interval_counts_from_the_start_and_lists_enabled_destinations():
    m = Metrics()
    _first_interval(m)
    s = summary.build_summary(None, m.snapshot(), 60.04, ["mailmodo", "segment", "mailjet"])
    assert s == {
        "interval_s": 60, "lag": 0,
        "interval": {"in": 5, "routed": {"mailmodo": 2, "segment": 1, "mailjet": 0},
                     "delivered": {"mailmodo": 2, "segment": 0, "mailjet": 0},
                     "dropped": {"missing_email": 1},
                     "dead_lettered": {"ingest": 1, "delivery": 0},
                     "held": 2, "holds_dropped": 0},
        "total": {"in": 5, "routed": {"mailmodo": 2, "segment": 1, "mailjet": 0},
                  "delivered": {"mailmodo": 2, "segment": 0, "mailjet": 0},
                  "dropped": {"missing_email": 1},
                  "dead_lettered": {"ingest": 1, "delivery": 0},
                  "held": 2, "holds_dropped": 0},
    }


def _two_intervals() -> dict:
    """The summary of the second interval after _first_interval."""
    m = Metrics()
    _first_interval(m)
    before = m.snapshot()
    _second_interval(m)
    return summary.build_summary(before, m.snapshot(), 30.0, ["mailmodo", "segment"])


def test_interval_is_the_difference_of_two_snapshots_and_lag_is_current():
    s = _two_intervals()
    assert s["interval"] == {
        "in": 5, "routed": {"mailmodo": 4, "segment": 0},
        "delivered": {"mailmodo": 3, "segment": 1},
        "dropped": {"missing_email": 2, "unknown_user": 1},
        "dead_lettered": {"ingest": 0, "delivery": 1},
        "held": 1, "holds_dropped": 3}
    assert s["total"] == {
        "in": 10, "routed": {"mailmodo": 6, "segment": 1},
        "delivered": {"mailmodo": 5, "segment": 1},
        "dropped": {"missing_email": 3, "unknown_user": 1},
        "dead_lettered": {"ingest": 1, "delivery": 1},
        "held": 3, "holds_dropped": 3}
    assert s["lag"] == 12 and s["interval_s"] == 30
    assert summary.format_summary(s) == (
        "summary last 30s/since start: in=5/10 routed=mailmodo:4/6,segment:0/1 "
        "delivered=mailmodo:3/5,segment:1/1 dropped=missing_email:2/3,unknown_user:1/1 "
        "dead_lettered=ingest:0/1,delivery:1/1 held=1/3 holds_dropped=3/3 lag=12")


def test_an_idle_worker_says_so_in_one_line():
    s = summary.build_summary(None, Metrics().snapshot(), 60.0)
    assert summary.format_summary(s) == (
        "summary last 60s/since start: in=0/0 routed=- delivered=- dropped=- "
        "dead_lettered=ingest:0/0,delivery:0/0 held=0/0 holds_dropped=0/0 lag=0")


def test_a_paused_destination_is_listed_with_its_waiting_records_while_paused():
    m = Metrics()
    m.destination_paused.labels("mailjet").set(1)
    m.destination_paused.labels("segment").set(0)
    m.destination_waiting_records.labels("mailjet").set(400)
    s = summary.build_summary(None, m.snapshot(), 60.0)
    assert s["paused"] == {"mailjet": 400}
    assert summary.format_summary(s).endswith(" lag=0 paused=mailjet:400")
    m.destination_paused.labels("mailjet").set(0)
    assert "paused" not in summary.build_summary(None, m.snapshot(), 60.0)


def _logged(fmt: str, s: dict) -> str:
    out = io.StringIO()
    setup_logging("INFO", fmt, ["mm-key-7f3a9c"], stream=out)
    summary.log_summary(s)
    return out.getvalue()


def test_json_log_line_carries_the_numbers_as_a_structured_field():
    s = _two_intervals()
    lines = _logged("json", s).splitlines()
    assert len(lines) == 1
    doc = orjson.loads(lines[0])
    assert doc["level"] == "INFO" and doc["logger"] == "streamproc.summary"
    assert doc["msg"] == summary.format_summary(s)
    assert doc["summary"] == s  # the dict itself: numbers stay numbers, keys stay keys
    assert doc["summary"]["interval"]["delivered"]["mailmodo"] == 3
    assert doc["summary"]["total"]["dropped"] == {"missing_email": 3, "unknown_user": 1}
    assert doc["summary"]["lag"] == 12
    assert doc["summary"]["interval"]["held"] == 1 and doc["summary"]["total"]["held"] == 3
    assert doc["summary"]["interval"]["holds_dropped"] == 3


def test_text_log_line_is_the_compact_key_value_line():
    s = summary.build_summary(None, Metrics().snapshot(), 60.0, ["mailmodo"])
    out = _logged("text", s)
    assert out.count("\n") == 1
    assert out.rstrip().endswith("INFO streamproc.summary: summary last 60s/since start: "
                                 "in=0/0 routed=mailmodo:0/0 delivered=mailmodo:0/0 dropped=- "
                                 "dead_lettered=ingest:0/0,delivery:0/0 held=0/0 "
                                 "holds_dropped=0/0 lag=0")


class _FakeApp:
    def __init__(self) -> None:
        self.timers: list[tuple[float, str, object]] = []

    def timer(self, interval: float, name: str):
        def register(fn):
            self.timers.append((interval, name, fn))
            return fn
        return register


def _runtime(interval: float) -> SimpleNamespace:
    metrics = Metrics()
    refreshed = []
    metrics.on_refresh(lambda rt: (refreshed.append(rt),
                                   rt.metrics.consumer_lag.labels("t.in", "0").set(4)))
    rt = SimpleNamespace(app=_FakeApp(), metrics=metrics, log_summary=None,
                         settings=SimpleNamespace(log_summary_interval_s=interval),
                         topology=SimpleNamespace(enabled=["mailmodo"]))
    rt.refreshed = refreshed
    return rt


def test_install_adds_one_timer_that_refreshes_and_logs_deltas(caplog):
    rt = _runtime(60.0)
    clock = iter([100.0, 160.0, 220.0])
    logger = summary.install(rt)
    logger.clock, logger.since = lambda: next(clock), next(clock)
    [(interval, name, tick)] = rt.app.timers
    assert interval == 60.0 and name == "streamproc.summary.log"
    rt.metrics.routed.labels("mailmodo").inc(2)
    with caplog.at_level(logging.INFO, logger="streamproc.summary"):
        asyncio.run(tick())
        rt.metrics.routed.labels("mailmodo").inc(1)
        asyncio.run(tick())
    first, second = [r.summary for r in caplog.records]
    assert rt.refreshed == [rt, rt]  # consumer_lag refreshed before each snapshot
    assert first["interval"]["routed"] == {"mailmodo": 2} and first["lag"] == 4
    assert second["interval"]["routed"] == {"mailmodo": 1}
    assert second["total"]["routed"] == {"mailmodo": 3}
    assert first["interval_s"] == second["interval_s"] == 60


def test_a_failing_summary_never_stops_the_timer(caplog):
    rt = _runtime(60.0)
    summary.install(rt)
    rt.metrics.snapshot = lambda: 1 / 0
    [(_, _, tick)] = rt.app.timers
    with caplog.at_level(logging.INFO, logger="streamproc.summary"):
        asyncio.run(tick())
    assert "worker summary failed" in caplog.text


def test_interval_zero_installs_nothing():
    rt = _runtime(0.0)
    assert summary.install(rt) is None and rt.app.timers == []


def test_setting_defaults_to_60s_and_validation():
    assert load_settings({}).log_summary_interval_s == 60.0
    assert load_settings({"STREAMPROC_LOG_SUMMARY_INTERVAL_S": "0"}).log_summary_interval_s == 0
    assert load_settings({"STREAMPROC_LOG_SUMMARY_INTERVAL_S": "15"}).log_summary_interval_s == 15
    for bad in ("-1", "0.5", "soon", "inf"):
        with pytest.raises(ConfigError) as e:
            load_settings({"STREAMPROC_LOG_SUMMARY_INTERVAL_S": bad})
        assert "STREAMPROC_LOG_SUMMARY_INTERVAL_S" in str(e.value)
