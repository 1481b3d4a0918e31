"""Fixture-driven parser cases: each tests/fixtures/events/<source>/<case>.json is one case
(loaded by conftest.py for tests taking a `case` argument, per the module's SOURCE); `check`
compares a parsed event with a case's expected subset of fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "events"


def load_case(path: Path) -> dict[str, Any]:
    case = json.loads(path.read_text(encoding="utf-8"))  # stdlib: big integers stay exact
    assert "description" in case, f"{path.name}: no description"
    assert ("expected" in case) != ("expected_error" in case), f"{path.name}: expected xor expected_error"
    if "input_text" in case:
        case["raw"] = case["input_text"].encode("utf-8")
    else:
        case["raw"] = json.dumps(case["input"]).encode("utf-8")
    case.setdefault("kwargs", {})
    return case


def check(obj: Any, expected: dict[str, Any], where: str = "") -> None:
    """Every expected key equals the attribute of `obj` (numbers approximately)."""
    for key, want in expected.items():
        got = getattr(obj, key)
        if isinstance(want, (int, float)) and not isinstance(want, bool) and want is not None:
            assert got == pytest.approx(want, abs=1e-6), f"{where}{key}: {got!r} != {want!r}"
        else:
            assert got == want, f"{where}{key}: {got!r} != {want!r}"


def check_batch(items: list[Any], errors: list[Any], expected: dict[str, Any], items_key: str,
                prefix: str) -> None:
    """For parsers returning (items, errors): expected {items_key: [subsets], errors: [{reason,
    index}]}; an error's message must start with '<prefix> <index>:'."""
    want_items = expected.get(items_key, [])
    assert len(items) == len(want_items), f"{items_key}: {len(items)} != {len(want_items)}"
    for i, (got, want) in enumerate(zip(items, want_items)):
        check(got, want, f"{items_key}[{i}].")
    want_errors = expected.get("errors", [])
    assert [e.reason for e in errors] == [w["reason"] for w in want_errors]
    for err, want in zip(errors, want_errors):
        if "index" in want:
            assert err.message.startswith(f"{prefix} {want['index']}:"), err.message
