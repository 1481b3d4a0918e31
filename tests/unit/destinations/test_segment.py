"""Segment mapping and response reading: fixture cases plus the 32 KB / 500 KB / 2,500 limits."""

from __future__ import annotations

import base64
import copy
import time
from datetime import datetime

import orjson

from destination_cases import record, run_mapping_case, run_response_case
from streamproc.config.settings import Secret, SegmentSettings
from streamproc.destinations import segment
from streamproc.destinations.segment import build_requests

SLUG = "segment"
NOW = 1714564800.0
KB = 1024


def test_mapping_case(mapping_case):
    run_mapping_case(SLUG, mapping_case)


def test_response_case(response_case):
    run_response_case(SLUG, response_case)


def track(i: int, size: int | None = None) -> dict:
    """A track record whose message serialises (compact JSON) to exactly `size` bytes."""
    message = {"type": "track", "event": "Big", "userId": f"u{i % 7}", "messageId": f"m{i:05d}",
               "properties": {"blob": ""}}
    if size is not None:
        message["properties"]["blob"] = "x" * (size - len(orjson.dumps(message)))
        assert len(orjson.dumps(message)) == size
    return {"id": f"r{i:05d}", "destination": "segment", "op": "track", "key": f"u{i % 7}",
            "created_at": NOW, "payload": {"message": message}}


def test_2501_messages_make_two_requests():
    records = [record(track(i)) for i in range(2501)]
    requests, failures = build_requests(records, SegmentSettings(), now=NOW)
    assert failures == []
    assert [len(r.body["batch"]) for r in requests] == [2500, 1]
    assert [rid for r in requests for rid in r.record_ids] == [r.id for r in records]


def test_requests_split_at_500_kb():
    # 30,000-byte messages: 17 fit in 500 KB (512,000 bytes) with the envelope, 18 do not
    records = [record(track(i, size=30_000)) for i in range(40)]
    requests, failures = build_requests(records, SegmentSettings(), now=NOW)
    assert failures == []
    assert [len(r.record_ids) for r in requests] == [17, 17, 6]
    for r in requests:
        assert len(orjson.dumps(r.body)) <= 500 * KB
    assert [rid for r in requests for rid in r.record_ids] == [r.id for r in records]


def test_message_size_limit_is_32_kb():
    records = [record(track(0, size=32 * KB)), record(track(1, size=33 * KB)),
               record(track(2, size=32 * KB + 1)), record(track(3))]
    requests, failures = build_requests(records, SegmentSettings(), now=NOW)
    assert [(rec.id, err.reason) for rec, err in failures] == [("r00001", "oversize"),
                                                              ("r00002", "oversize")]
    assert [r.record_ids for r in requests] == [["r00000", "r00003"]]


def test_sent_at_defaults_to_the_clock():
    before = time.time()
    requests, _ = build_requests([record(track(0))], SegmentSettings())
    sent_at = datetime.fromisoformat(requests[0].body["sentAt"].replace("Z", "+00:00"))
    assert before - 1 <= sent_at.timestamp() <= time.time() + 1
    assert requests[0].body["sentAt"].endswith("Z")


def test_payload_is_not_mutated():
    raw = track(0)
    del raw["payload"]["message"]["messageId"]
    kept = copy.deepcopy(raw)
    rec = record(raw)
    requests, _ = build_requests([rec], SegmentSettings(), now=NOW)
    assert requests[0].body["batch"][0]["messageId"] == "r00000"
    assert rec.payload == kept["payload"]


def test_auth_is_basic_write_key_and_empty_password():
    headers = segment.auth(SegmentSettings(write_key=Secret("wk_1")))
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"wk_1:").decode()
