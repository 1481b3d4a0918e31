"""The pure parts of `streamproc dlq` and `streamproc replay`: time parsing, filters, the
selection, formatting, what a redrive puts back where, and what a replay plans."""

from __future__ import annotations

import io
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from streamproc.config.settings import Settings
from streamproc.config.topology import load_topology
from streamproc.core.force_header import FORCE_HEADER, replay_headers
from streamproc.core.records import SinkRecord, dead_letter
from streamproc.ops.command_errors import UsageError
from streamproc.ops.dlq.command import dlq_topics
from streamproc.ops.dlq.entries import INGEST, DlqEntry, DlqFilter, Selection, format_table
from streamproc.ops.dlq.redrive import Skip, plan_redrive
from streamproc.ops.replay.command import plan_replay
from streamproc.ops.replay.counting import RangeStats, ledger_changelog, sink_id
from streamproc.ops.timespec import format_time, parse_time, time_window
from streamproc.ops.topic_reader import PartitionRange, Progress, describe_ranges

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_795_000_000.0  # 2026-11-18T...
Msg = namedtuple("Msg", "topic partition offset key value timestamp headers",
                 defaults=(None, 0, ()))


@pytest.fixture
def topo():
    return load_topology(ROOT / "topics.yaml").with_prefix("p.")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


# ------------------------------------------------------------------------------ time


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=timezone.utc).timestamp()),
    ("2026-11-20T10:00:00+02:00", datetime(2026, 11, 20, 8, tzinfo=timezone.utc).timestamp()),
    ("2026-11-20T10:00:00.250Z", datetime(2026, 11, 20, 10, tzinfo=timezone.utc).timestamp() + .25),
    ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=timezone.utc).timestamp()),  # UTC
    ("2026-11-20", datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()),
    ("1795000000", 1_795_000_000.0),
    ("1795000000.5", 1_795_000_000.5),
    ("1795000000500", 1_795_000_000.5),  # milliseconds
    ("0", 0.0),
    ("now", NOW),
    ("30m", NOW - 1800), ("2h", NOW - 7200), ("1d", NOW - 86400), ("1w", NOW - 604800),
    ("-90s", NOW - 90), ("1.5H", NOW - 5400),
])
def test_parse_time(text, expected):
    assert parse_time(text, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "-5", "nan", "inf", "10 parsecs"])
def test_parse_time_rejects_with_the_option_name(text):
    with pytest.raises(UsageError) as e:
        parse_time(text, now=NOW, option="--since")
    assert "--since" in str(e.value)


def test_time_window_order():
    assert time_window(None, None, now=NOW) == (None, None)
    assert time_window("2h", "1h", now=NOW) == (NOW - 7200, NOW - 3600)
    with pytest.raises(UsageError, match="--until .* is before --since"):
        time_window("1h", "2h", now=NOW)


def test_format_time():
    assert format_time(datetime(2026, 11, 20, 10, 0, 5, 900000, tzinfo=timezone.utc).timestamp()
                       ) == "2026-11-20T10:00:05Z"
    assert format_time(None) == "-"
    assert format_time(1e20) == "-"


# ------------------------------------------------------------------------------ entries


def _sink(email="ada@example.com", rid="id-1", op="add_event", dest="mailmodo"):
    return SinkRecord(dest, op, email.lower(), rid,
                      {"email": email, "event_name": "Order Completed", "ts": 1, "properties": {}},
                      source={"topic": "p.streamproc.by-user", "partition": 1, "offset": 7})


def _delivery_entry(at=NOW, dest="mailmodo", **kw):
    rec = kw.pop("record", _sink(dest=dest))
    doc = orjson.loads(dead_letter(
        stage="delivery", reason=kw.pop("reason", "http_400"), message="HTTP 400: bad",
        original=None, source=rec.source, destination=dest, record=rec.to_dict(), status=400,
        response_excerpt='{"success": false, "message": "bad"}', attempts=3,
        first_attempt_at=at - 2, last_attempt_at=at))
    doc["dead_lettered_at"] = at
    return DlqEntry.from_message(dest, Msg(f"p.dlq.{dest}", kw.pop("partition", 2),
                                           kw.pop("offset", 5), rec.key.encode(),
                                           orjson.dumps(doc), int(at * 1000) + 3))


def _ingest_entry(at=NOW, original=b"not json", reason="not_json", source_input="segment",
                  offset=11, key=b"k-1", stage="ingest"):
    src = {"topic": f"p.{'segment.raw' if source_input == 'segment' else 'clevertap.triggers.raw'}",
           "partition": 4, "offset": offset, "input": source_input, "key": "k-1"}
    doc = orjson.loads(dead_letter(stage=stage, reason=reason, message="the bytes are not JSON",
                                   original=original, source=src))
    doc["dead_lettered_at"] = at
    return DlqEntry.from_message(INGEST, Msg("p.streamproc.dlq.ingest", 0, 3, key,
                                             orjson.dumps(doc), int(at * 1000)))


def test_entry_properties():
    e = _delivery_entry()
    assert (e.stage, e.reason, e.status, e.attempts, e.where, e.ident) == (
        "delivery", "http_400", 400, 3, "mailmodo", "id-1")
    assert e.at == NOW
    assert e.message == 'HTTP 400: bad | {"success": false, "message": "bad"}'
    e.doc["message"] = 'HTTP 400: {"success": false, "message": "bad"}'
    assert e.message == e.doc["message"]  # the excerpt is not repeated
    i = _ingest_entry()
    assert (i.stage, i.status, i.attempts, i.where, i.ident) == ("ingest", None, 0,
                                                                 "ingest/segment", "k-1")


def test_unreadable_entry_falls_back_to_record_time():
    e = DlqEntry.from_message("mailjet", Msg("p.dlq.mailjet", 0, 1, None, b"\xff garbage",
                                             1_700_000_000_000))
    assert e.doc is None and e.reason == "unreadable" and e.at == 1_700_000_000.0
    assert "unreadable" in e.message and e.ident == "-"
    assert orjson.loads(e.to_json())["dlq"]["offset"] == 1
    with pytest.raises(Skip):
        plan_redrive(e, load_topology(ROOT / "topics.yaml"))


def test_entry_json_keeps_the_document_and_where_it_was():
    e = _delivery_entry()
    d = orjson.loads(e.to_json())
    assert d["dlq"] == {"destination": "mailmodo", "topic": "p.dlq.mailmodo", "partition": 2,
                        "offset": 5, "key": "ada@example.com", "timestamp": int(NOW * 1000) + 3}
    assert d["record"]["id"] == "id-1" and d["status"] == 400 and d["attempts"] == 3


def test_filter():
    e = _delivery_entry(at=NOW)
    assert DlqFilter().matches(e)
    assert DlqFilter(reason="http_400").matches(e)
    assert not DlqFilter(reason="http_404").matches(e)
    assert DlqFilter(since=NOW, until=NOW).matches(e)  # inclusive both ends
    assert not DlqFilter(since=NOW + 0.001).matches(e)
    assert not DlqFilter(until=NOW - 0.001).matches(e)


def test_selection_keeps_the_oldest_and_counts_the_rest():
    sel = Selection(3)
    for i in range(5000):
        sel.add(_delivery_entry(at=NOW - i, offset=i))
    assert sel.matched == 5000 and sel.left_out == 4997
    assert [e.offset for e in sel.entries] == [4999, 4998, 4997]
    everything = Selection(0)
    for i in range(10):
        everything.add(_delivery_entry(at=NOW + i, offset=i))
    assert len(everything.entries) == 10 and everything.left_out == 0


def test_dlq_topics(topo):
    assert dlq_topics(topo, "mailmodo") == [("mailmodo", "p.dlq.mailmodo")]
    assert dlq_topics(topo, "ingest,segment") == [(INGEST, "p.streamproc.dlq.ingest"),
                                                  ("segment", "p.dlq.segment")]
    assert len(dlq_topics(topo, None)) == 5
    with pytest.raises(UsageError, match="mailchimp"):
        dlq_topics(topo, "mailchimp")


def test_table():
    lines = format_table([_delivery_entry(), _ingest_entry(original=b"x" * 500)])
    assert lines[0].split() == ["TIME", "DESTINATION", "REASON", "STATUS", "ATTEMPTS", "ID/KEY",
                                "MESSAGE"]
    row = lines[1].split()
    assert row[:6] == [format_time(NOW), "mailmodo", "http_400", "400", "3", "id-1"]
    assert lines[2].split()[:6] == [format_time(NOW), "ingest/segment", "not_json", "-", "-", "k-1"]
    # columns line up; long messages are cut to one short line
    assert lines[1].index("http_400") == lines[2].index("not_json") == lines[0].index("REASON")
    long = _delivery_entry()
    long.doc["message"] = "line one\nline two " + "y" * 300
    msg = format_table([long])[1].split("id-1", 1)[1].strip()
    assert "\n" not in msg and len(msg) <= 80 and msg.endswith("…")
    assert format_table([]) == [
        "TIME  DESTINATION  REASON  STATUS  ATTEMPTS  ID/KEY  MESSAGE"]


# ------------------------------------------------------------------------------ redrive


def test_redrive_delivery_record_goes_to_its_sink_by_key_unforced(topo):
    e = _delivery_entry()
    r = plan_redrive(e, topo)
    assert (r.kind, r.topic, r.key, r.partition) == ("delivery", "p.sink.mailmodo",
                                                     b"ada@example.com", None)
    assert SinkRecord.loads(r.value).to_dict() == e.record
    assert r.headers == [] and r.dedup == ("id", "id-1")


def test_redrive_refuses_a_disabled_destination_and_a_wrong_topic(topo):
    from dataclasses import replace

    off = replace(topo, destinations={**topo.destinations, "mailmodo": replace(
        topo.destinations["mailmodo"], enabled=False)})
    with pytest.raises(Skip, match="disabled"):
        plan_redrive(_delivery_entry(), off)
    stray = _delivery_entry(record=_sink(dest="segment"))
    stray.dlq = "mailmodo"
    with pytest.raises(Skip, match="record for segment"):
        plan_redrive(stray, topo)


def test_redrive_bad_sink_record_puts_the_original_bytes_back(topo):
    doc = orjson.loads(dead_letter(stage="delivery", reason="bad_sink_record", message="x",
                                   original=b"{broken", destination="segment",
                                   source={"topic": "p.sink.segment", "partition": 3,
                                           "offset": 9}))
    e = DlqEntry.from_message("segment", Msg("p.dlq.segment", 0, 0, b"u-1", orjson.dumps(doc)))
    r = plan_redrive(e, topo)
    assert (r.topic, r.key, r.value, r.partition) == ("p.sink.segment", b"u-1", b"{broken", 3)


def test_redrive_ingest_record_goes_to_its_raw_topic_with_exact_bytes(topo):
    e = _ingest_entry(original=b"\xff\xfe not utf-8", source_input="clevertap")
    r = plan_redrive(e, topo)
    assert (r.kind, r.topic, r.key, r.value, r.partition) == (
        "ingest", "p.clevertap.triggers.raw", b"k-1", b"\xff\xfe not utf-8", 4)
    assert r.headers_from == ("p.clevertap.triggers.raw", 4, 11)
    assert r.dedup == ("src", "p.clevertap.triggers.raw", 4, 11)
    # two bad profiles of one webhook call: one raw record, re-driven once (same dedup key)
    assert plan_redrive(_ingest_entry(source_input="clevertap"), topo).dedup == r.dedup


def test_redrive_ingest_with_unknown_input_or_no_bytes_is_skipped(topo):
    with pytest.raises(Skip, match="unknown input"):
        plan_redrive(_ingest_entry(source_input="hubspot"), topo)
    e = _ingest_entry()
    del e.doc["original"]
    with pytest.raises(Skip, match="no original bytes"):
        plan_redrive(e, topo)
    cut = _ingest_entry()
    cut.doc.update(original_truncated=True, original_size=5_000_000)
    with pytest.raises(Skip, match="5000000 bytes"):
        plan_redrive(cut, topo)


def test_redrive_routing_record_goes_back_to_the_internal_topic(topo):
    doc = orjson.loads(dead_letter(stage="routing", reason="routing_error", message="boom",
                                   original=b'{"v":1}',
                                   source={"topic": "p.streamproc.by-user", "partition": 2,
                                           "offset": 40}))
    e = DlqEntry.from_message(INGEST, Msg("p.streamproc.dlq.ingest", 0, 0, b"u-9",
                                          orjson.dumps(doc)))
    r = plan_redrive(e, topo)
    assert (r.kind, r.topic, r.key, r.partition) == ("routing", "p.streamproc.by-user", b"u-9", 2)
    assert e.where == "ingest/routing"
    doc["source"]["topic"] = "p.sink.mailmodo"
    with pytest.raises(Skip, match="not an internal topic"):
        plan_redrive(DlqEntry.from_message(INGEST, Msg("t", 0, 0, b"k", orjson.dumps(doc))), topo)


# ------------------------------------------------------------------------------ replay plan


def test_plan_input_replay(topo):
    plan = plan_replay(topo, "segment")
    assert [(j.kind, j.name, j.topic, j.force) for j in plan.jobs] == [
        ("input", "segment", "p.segment.raw", False)]
    assert plan.notes == []


def test_plan_sink_replay(topo):
    plan = plan_replay(topo, "sink.mailjet", force=True, by_offset=True)
    assert [(j.kind, j.name, j.topic, j.force) for j in plan.jobs] == [
        ("sink", "mailjet", "p.sink.mailjet", True)]
    assert plan_replay(topo, "sink.mailjet", destination="mailjet").jobs[0].label == "sink.mailjet"
    with pytest.raises(UsageError, match="contradicts"):
        plan_replay(topo, "sink.mailjet", destination="segment")


def test_plan_input_with_destination_replays_that_sink(topo):
    plan = plan_replay(topo, "mailmodo", destination="clevertap")
    assert [(j.kind, j.topic, j.force) for j in plan.jobs] == [("sink", "p.sink.clevertap", False)]
    assert "replaying sink.clevertap over the same time range" in plan.notes[0]


def test_plan_input_with_force_replays_all_enabled_sinks_forced(topo):
    from dataclasses import replace

    off = replace(topo, destinations={**topo.destinations, "segment": replace(
        topo.destinations["segment"], enabled=False)})
    plan = plan_replay(off, "segment", force=True)
    assert [(j.name, j.force) for j in plan.jobs] == [
        ("mailmodo", True), ("clevertap", True), ("mailjet", True)]
    assert "--force with input segment" in plan.notes[0]
    with pytest.raises(UsageError, match="--from-time"):
        plan_replay(topo, "segment", force=True, by_offset=True)
    with pytest.raises(UsageError, match="--from-time"):
        plan_replay(topo, "segment", destination="mailmodo", by_offset=True)


def test_plan_rejects_unknown_sources(topo):
    for bad in ("hubspot", "sink.hubspot", "sink.", "by_user"):
        with pytest.raises(UsageError, match="unknown source"):
            plan_replay(topo, bad)
    with pytest.raises(UsageError, match="--destination"):
        plan_replay(topo, "segment", destination="hubspot")


def test_plan_warns_about_a_disabled_destination(topo):
    from dataclasses import replace

    off = replace(topo, destinations={**topo.destinations, "mailjet": replace(
        topo.destinations["mailjet"], enabled=False)})
    assert "disabled" in plan_replay(off, "sink.mailjet").notes[0]


# ------------------------------------------------------------------------------ replay bits


def test_replay_headers_own_the_force_flag():
    hdrs = [("campaign_id", b"c-1"), (FORCE_HEADER, b"1"), ("trace", b"t")]
    assert replay_headers(hdrs, False) == [("campaign_id", b"c-1"), ("trace", b"t")]
    assert replay_headers(hdrs, True) == [("campaign_id", b"c-1"), ("trace", b"t"),
                                          (FORCE_HEADER, b"1")]
    assert replay_headers(None, True) == [(FORCE_HEADER, b"1")]


def test_range_stats_for_a_sink_keep_the_last_copy_of_each_id():
    s = RangeStats()
    s.add_sink(Msg("t", 0, 1, b"k", _sink(rid="a").dumps()))
    s.add_sink(Msg("t", 0, 2, b"k", _sink(rid="b", op="contact_upsert").dumps()))
    s.add_sink(Msg("t", 1, 7, b"k", _sink(rid="a").dumps()))
    s.add_sink(Msg("t", 1, 8, b"k", b"{not json"))
    assert s.total == 4 and s.unreadable == 1
    assert s.ids == {"a": (1, 7), "b": (0, 2)}
    assert s.by_op == {"add_event": 2, "contact_upsert": 1}
    assert sink_id(_sink(rid="z").dumps()) == "z" and sink_id(b"[]") is None
    assert sink_id(None) is None


def test_range_stats_for_an_input_parse_like_the_worker():
    s = RangeStats()
    ident = {"type": "identify", "userId": "u", "messageId": "m", "traits": {"email": "a@b.co"},
             "timestamp": "2026-11-20T10:00:00Z"}
    s.add_input("segment", Msg("t", 0, 0, b"u", orjson.dumps(ident), 1_795_000_000_000))
    s.add_input("segment", Msg("t", 1, 0, None, b"nope", 1_795_000_000_000))
    assert s.per_partition == {0: 1, 1: 1}
    assert s.by_op == {"identify": 1} and s.dead_letters == {"not_json": 1}


def test_describe_ranges_and_ledger_name():
    ranges = [PartitionRange("t", 0, 5, 5), PartitionRange("t", 1, 3, 10)]
    assert describe_ranges(ranges) == "p1 3..9"
    assert describe_ranges(ranges[:1]) == "nothing in range"
    assert ranges[1].count == 7 and ranges[0].count == 0
    assert ledger_changelog(Settings(app_id="acme"), "mailmodo") == "acme-ledger-mailmodo-changelog"


def test_progress_lines():
    clock = iter([0.0, 0.5, 1.2, 1.3, 5.0]).__next__
    out = io.StringIO()
    p = Progress("replay segment", 10, stream=out, clock=clock)
    p.tick(2)  # 0.5 s: nothing yet
    p.tick(3)  # 1.2 s: a line
    p.tick(1)  # 1.3 s: too soon
    p.finish()
    assert out.getvalue().splitlines() == ["replay segment: read 5/10 records (50%)",
                                           "replay segment: read 6/10 records (60%)"]
    quiet = io.StringIO()
    q = Progress("dlq", 3, stream=quiet, clock=iter([0.0, 0.1]).__next__, quiet_when_fast=True)
    q.tick(3)
    q.finish()
    assert quiet.getvalue() == ""
