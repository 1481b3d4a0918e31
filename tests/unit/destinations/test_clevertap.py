"""CleverTap mapping and response reading: fixture cases plus the 1,000-record, 120-character and
512-byte limits."""

from __future__ import annotations

from destination_cases import record, run_mapping_case, run_response_case
from streamproc.config.settings import CleverTapSettings, Secret
from streamproc.destinations import clevertap
from streamproc.destinations.clevertap import build_requests

SLUG = "clevertap"


def test_mapping_case(mapping_case):
    run_mapping_case(SLUG, mapping_case)


def test_response_case(response_case):
    run_response_case(SLUG, response_case)


def ct_event(i: int, name: str = "MM Email Opened", data: dict | None = None) -> dict:
    return {"id": f"c{i}", "destination": "clevertap", "op": "event", "key": f"k{i % 5}",
            "created_at": 1714564800.0,
            "payload": {"object_id": f"__g{i % 5}", "evt_name": name, "ts": 1714564800 + i,
                        "evt_data": data or {}}}


def test_1001_events_make_two_uploads():
    records = [record(ct_event(i)) for i in range(1001)]
    requests, failures = build_requests(records, CleverTapSettings())
    assert failures == []
    assert [len(r.body["d"]) for r in requests] == [1000, 1]
    assert [rid for r in requests for rid in r.record_ids] == [r.id for r in records]
    assert all(r.path == "/1/upload" for r in requests)


def test_values_cut_to_512_bytes_without_splitting_characters():
    value = "a" + "é" * 600  # 1,201 bytes of UTF-8
    data = {"k" * 130: "v", "long": value, "ascii": "z" * 600}
    requests, _ = build_requests([record(ct_event(0, data=data))], CleverTapSettings())
    evt_data = requests[0].body["d"][0]["evtData"]
    assert evt_data["long"] == "a" + "é" * 255  # 511 bytes: the 512th would split "é"
    assert evt_data["ascii"] == "z" * 512
    assert evt_data["k" * 120] == "v" and "k" * 130 not in evt_data


def test_event_name_of_120_characters_is_accepted_121_rejected():
    ok, too_long = "N" * 120, "N" * 121
    requests, failures = build_requests([record(ct_event(0, ok)), record(ct_event(1, too_long))],
                                        CleverTapSettings())
    assert [r.record_ids for r in requests] == [["c0"]]
    assert [(rec.id, err.reason) for rec, err in failures] == [("c1", "name_too_long")]


def test_auth_headers():
    headers = clevertap.auth(CleverTapSettings(account_id="ACC-1", passcode=Secret("pass")))
    assert headers == {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "pass",
                       "Content-Type": "application/json; charset=utf-8"}
