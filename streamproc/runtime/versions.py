"""The exact versions streamproc's runtime was written against, and the start-up check: the
runtime corrects their internals, so any other version is refused rather than trusted. The
same pins are in pyproject.toml and constraints.txt (tests/unit/test_versions.py)."""
from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping

PINS: Mapping[str, str] = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1",
                           "aiokafka": "0.14.0"}


class UnsupportedVersions(RuntimeError):
    """An installed version (or a missing distribution) differs from PINS."""


def check(pins: Mapping[str, str] = PINS,
          version_of: Callable[[str], str] = importlib.metadata.version) -> None:
    """Raise UnsupportedVersions naming every distribution whose version differs from pins."""
    found = []
    for name, pinned in pins.items():
        try:
            version = version_of(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        if version != pinned:
            found.append(f"{name} {version}")
    if found:
        wanted = ", ".join(f"{name}=={pinned}" for name, pinned in pins.items())
        raise UnsupportedVersions(
            f"streamproc's runtime was written for {wanted} and corrects their internals; "
            f"found {', '.join(found)}. Install with `pip install -c constraints.txt ...` "
            "or see README 'Why these choices'.")
