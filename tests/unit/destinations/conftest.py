"""Destination tests: a module that sets SLUG gets its fixture cases as `mapping_case` and
`response_case` parameters (see destination_cases.py)."""

from __future__ import annotations

import pytest

from destination_cases import parametrize_cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    slug = getattr(metafunc.module, "SLUG", None)
    if slug is not None:
        parametrize_cases(metafunc, slug)
