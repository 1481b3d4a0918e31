"""CleverTap sink records -> POST /1/upload requests of up to 1,000 event records identified by
objectId. Enforces CleverTap's 120-character names and 512-byte values. Pure: no auth, no I/O."""

from __future__ import annotations

from typing import Any

from streamproc.config.settings import CleverTapSettings
from streamproc.core.errors import Permanent
from streamproc.core.records import OP_EVENT, SinkRecord
from streamproc.destinations.outcomes import rejected
from streamproc.destinations.property_values import Scalar, scalar, truncate_utf8, unix_seconds
from streamproc.destinations.request import HttpRequest

MAX_RECORDS_PER_UPLOAD = 1000
MAX_NAME_CHARS = 120
MAX_VALUE_BYTES = 512


def record_identity(upload_record: dict[str, Any]) -> str:
    """objectId|evtName|ts: how an `unprocessed` entry of a response is matched to our record."""
    return "|".join(str(upload_record.get(k, "")) for k in ("objectId", "evtName", "ts"))


def event_data(properties: dict[str, Any]) -> dict[str, Scalar]:
    """evtData: keys cut to 120 characters (first one wins on a clash), string values cut to
    512 UTF-8 bytes, objects and lists as JSON text (then cut), nulls dropped."""
    out: dict[str, Scalar] = {}
    for key, value in properties.items():
        v = scalar(value)
        if v is None:
            continue
        if isinstance(v, str):
            v = truncate_utf8(v, MAX_VALUE_BYTES)
        out.setdefault(str(key)[:MAX_NAME_CHARS], v)
    return out


def upload_event_record(record: SinkRecord) -> dict[str, Any]:
    """One entry of `d`: {"type":"event","evtName","evtData","ts","objectId"}. Raises Permanent
    for a missing objectId or event name, or a name over 120 characters."""
    p = record.payload
    object_id = p.get("object_id")
    if isinstance(object_id, int) and not isinstance(object_id, bool):
        object_id = str(object_id)
    if not isinstance(object_id, str) or not object_id.strip():
        raise rejected("missing_object_id", f"record {record.id} has no CleverTap objectId")
    name = p.get("evt_name")
    if not isinstance(name, str) or not name.strip():
        raise rejected("missing_event_name", f"record {record.id} has no event name")
    if len(name) > MAX_NAME_CHARS:
        raise rejected("name_too_long", f"record {record.id}: event name is {len(name)} "
                                        f"characters, CleverTap accepts at most {MAX_NAME_CHARS}")
    data = p.get("evt_data")
    return {"type": "event", "evtName": name,
            "evtData": event_data(data if isinstance(data, dict) else {}),
            "ts": unix_seconds(p.get("ts"), record.created_at), "objectId": object_id.strip()}


def upload_request(entries: list[dict[str, Any]], record_ids: list[str]) -> HttpRequest:
    """POST /1/upload {"d": [...]}; record_keys are the entries' identities."""
    return HttpRequest("POST", "/1/upload", {"d": entries}, list(record_ids), "upload",
                       record_keys=[record_identity(e) for e in entries])


def build_requests(records: list[SinkRecord], settings: CleverTapSettings, *,
                   now: float | None = None
                   ) -> tuple[list[HttpRequest], list[tuple[SinkRecord, Permanent]]]:
    """Records (in order) -> /1/upload requests in the same order, <= 1,000 records each."""
    del settings, now  # the body depends on neither
    requests: list[HttpRequest] = []
    failures: list[tuple[SinkRecord, Permanent]] = []
    entries: list[dict[str, Any]] = []
    ids: list[str] = []
    for record in records:
        try:
            if record.op != OP_EVENT:
                raise rejected("unsupported_op", f"clevertap has no operation {record.op!r}")
            entry = upload_event_record(record)
        except Permanent as err:
            failures.append((record, err))
            continue
        entries.append(entry)
        ids.append(record.id)
        if len(entries) == MAX_RECORDS_PER_UPLOAD:
            requests.append(upload_request(entries, ids))
            entries, ids = [], []
    if entries:
        requests.append(upload_request(entries, ids))
    return requests, failures
