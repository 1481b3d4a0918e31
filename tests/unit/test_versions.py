"""The version guard: the installed faust-streaming, mode-streaming and aiokafka are the pinned
ones, a mismatch or a missing distribution fails with one message naming it, and the pins in
streamproc/runtime/versions.py, pyproject.toml and constraints.txt agree (a pin changed in one
place only fails here)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from streamproc.runtime.versions import PINS, UnsupportedVersions, check

ROOT = Path(__file__).resolve().parents[2]


def _versions(**overrides):
    def version_of(name: str) -> str:
        found = {**PINS, **overrides}.get(name)
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found
    return version_of


def test_installed_versions_pass():
    check()


def test_a_mismatch_names_distribution_pin_and_found_version():
    with pytest.raises(UnsupportedVersions) as raised:
        check(version_of=_versions(aiokafka="0.15.0"))
    message = str(raised.value)
    assert "aiokafka==0.14.0" in message and "found aiokafka 0.15.0" in message
    assert isinstance(raised.value, RuntimeError)


def test_a_missing_distribution_is_named():
    with pytest.raises(UnsupportedVersions) as raised:
        check(version_of=_versions(**{"mode-streaming": None, "aiokafka": "0.13.0"}))
    message = str(raised.value)
    assert "mode-streaming==0.7.1" in message and "mode-streaming not installed" in message
    assert "aiokafka 0.13.0" in message  # every mismatch, in one message
    assert "faust-streaming 0" not in message


def _exact(spec) -> str | None:
    specs = list(spec)
    if len(specs) == 1 and specs[0].operator == "==":
        return specs[0].version
    return None


def test_pins_agree_with_pyproject_and_constraints():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    in_pyproject = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        in_pyproject[canonicalize_name(req.name)] = _exact(req.specifier)
    in_constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!_-]+)", line)
            assert match, f"constraints.txt: not an exact name==version pin: {line!r}"
            in_constraints[canonicalize_name(match[1])] = match[2]
    for name, pinned in PINS.items():
        key = canonicalize_name(name)
        assert in_pyproject.get(key) == pinned, f"pyproject.toml: {name} is not =={pinned}"
        assert in_constraints.get(key) == pinned, f"constraints.txt: {name} is not =={pinned}"
