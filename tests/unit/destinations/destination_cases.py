"""Fixture-driven destination cases. tests/fixtures/destinations/<slug>/<case>.json is a mapping
case (records -> expected requests and failures); .../<slug>/responses/<case>.json a response
case (request + status + body -> expected per-record outcome). Loading and checking live here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.config.settings import Settings
from streamproc.core.errors import AuthError, Permanent, Retryable, Throttled
from streamproc.core.records import SinkRecord
from streamproc.destinations.registry import DESTINATIONS
from streamproc.destinations.request import HttpRequest, RecordOutcome

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "destinations"


def _load(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    case = json.loads(path.read_text(encoding="utf-8"))
    for key in ("description", *required):
        assert key in case, f"{path}: no {key}"
    return case


def parametrize_cases(metafunc: pytest.Metafunc, slug: str) -> None:
    """Parametrises `mapping_case` and `response_case` arguments with the slug's fixture files."""
    if "mapping_case" in metafunc.fixturenames:
        files = sorted((FIXTURES / slug).glob("*.json"))
        assert files, f"no mapping fixtures for {slug}"
        cases = [_load(f, ("records", "expected_requests", "expected_failures")) for f in files]
        metafunc.parametrize("mapping_case", cases, ids=[f.stem for f in files])
    if "response_case" in metafunc.fixturenames:
        files = sorted((FIXTURES / slug / "responses").glob("*.json"))
        assert files, f"no response fixtures for {slug}"
        cases = [_load(f, ("request", "status", "expected")) for f in files]
        metafunc.parametrize("response_case", cases, ids=[f.stem for f in files])


def settings_for(slug: str, overrides: dict[str, Any] | None = None) -> Any:
    return dataclasses.replace(Settings().destination(slug), **(overrides or {}))


def record(d: dict[str, Any]) -> SinkRecord:
    return SinkRecord.from_dict(d)


def run_mapping_case(slug: str, case: dict[str, Any]) -> None:
    module = DESTINATIONS[slug]
    records = [record(r) for r in case["records"]]
    requests, failures = module.build_requests(records, settings_for(slug, case.get("settings")),
                                               now=case.get("now"))
    got = [_request_view(r, want) for r, want in zip(requests, case["expected_requests"])]
    assert len(requests) == len(case["expected_requests"]), [r.record_ids for r in requests]
    assert got == case["expected_requests"]
    got_failures = [{"id": rec.id, "reason": getattr(err, "reason", None)} for rec, err in failures]
    assert got_failures == [{"id": f["id"], "reason": f["reason"]} for f in case["expected_failures"]]
    for _, err in failures:
        assert isinstance(err, Permanent) and str(err)
    placed = [rid for r in requests for rid in r.record_ids] + [rec.id for rec, _ in failures]
    assert sorted(placed) == sorted(r.id for r in records), "every record placed exactly once"


def _request_view(request: HttpRequest, want: dict[str, Any]) -> dict[str, Any]:
    """The fields of `request` the expectation names (method/path/body/record_ids always)."""
    view = {"method": request.method, "path": request.path, "body": request.body,
            "record_ids": request.record_ids}
    for optional in ("record_keys", "exclusive", "kind"):
        if optional in want:
            view[optional] = getattr(request, optional)
    return {k: view[k] for k in want}


def response_request(d: dict[str, Any]) -> HttpRequest:
    return HttpRequest(d["method"], d["path"], d["body"], d["record_ids"], d["kind"],
                       exclusive=d.get("exclusive", False), record_keys=d.get("record_keys", []))


def response_body(case: dict[str, Any]) -> bytes:
    if "body_text" in case:
        return case["body_text"].encode("utf-8")
    return json.dumps(case["body"]).encode("utf-8")


OUTCOME_CLASSES = {"permanent": Permanent, "throttled": Throttled, "auth": AuthError}


def check_outcome(outcome: RecordOutcome, want: dict[str, Any]) -> None:
    where = f"record {want['id']}: "
    assert outcome.record_id == want["id"], where + "order"
    kind = want["outcome"]
    if kind == "ok":
        assert outcome.ok, where + f"expected ok, got {outcome.error!r}"
        return
    err = outcome.error
    if kind == "retryable":
        assert isinstance(err, Retryable) and not isinstance(err, Throttled), where + repr(err)
    else:
        assert isinstance(err, OUTCOME_CLASSES[kind]), where + f"expected {kind}, got {err!r}"
    if "reason" in want:
        assert getattr(err, "reason", None) == want["reason"], where + repr(err)
    if "retry_after" in want:
        assert err.retry_after == want["retry_after"], where + "retry_after"
    if "properties" in want:
        assert err.properties == want["properties"], where + "properties"


def run_response_case(slug: str, case: dict[str, Any]) -> None:
    module = DESTINATIONS[slug]
    request = response_request(case["request"])
    outcomes = module.interpret(request, case["status"], response_body(case), case.get("headers", {}))
    assert len(outcomes) == len(case["expected"])
    for outcome, want in zip(outcomes, case["expected"]):
        check_outcome(outcome, want)
