"""Parametrises tests taking `case` with the JSON cases of their module's SOURCE."""

from __future__ import annotations

import pytest

from event_cases import FIXTURES, load_case


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        files = sorted((FIXTURES / metafunc.module.SOURCE).glob("*.json"))
        assert files, f"no fixtures for {metafunc.module.SOURCE}"
        metafunc.parametrize("case", [load_case(f) for f in files], ids=[f.stem for f in files])
