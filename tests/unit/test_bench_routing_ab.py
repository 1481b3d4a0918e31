"""bench/routing.py's A/B summary over rounds (the benchmark itself needs a broker and is not in
the suite): the means per side and their ratio, and a round without its figures left out
instead of failing the whole result (review of --rounds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.routing import ab_summary, main  # noqa: E402


def _side(cpu: float | None, eps: float | None, timed_out: bool = False) -> dict:
    return {"worker_cpu_s_per_1k_inputs": cpu, "events_per_s": eps, "timed_out": timed_out}


def test_ratio_of_the_means_and_per_round() -> None:
    got = ab_summary([{"baseline": _side(0.06, 12000.0), "burst": _side(0.066, 11000.0)},
                      {"baseline": _side(0.07, 10000.0), "burst": _side(0.084, 9000.0)}])
    assert got["rounds"] == 2 and got["left_out"] == 0
    assert got["cpu_s_per_1k"]["change_pct"] == pytest.approx(15.4, abs=0.05)  # 0.075 / 0.065
    assert got["cpu_s_per_1k"]["per_round_pct"] == [10.0, 20.0]
    assert got["events_per_s"]["change_pct"] == pytest.approx(-9.1, abs=0.05)  # 10000 / 11000


def test_rounds_without_figures_are_left_out() -> None:
    got = ab_summary([{"baseline": _side(0.06, 12000.0), "burst": _side(0.066, 11000.0)},
                      {"baseline": _side(None, 10000.0), "burst": _side(0.08, 9000.0)},
                      {"baseline": _side(0.06, 9000.0), "burst": _side(0.09, 8000.0, True)}])
    assert got["rounds"] == 1 and got["left_out"] == 2
    assert got["cpu_s_per_1k"]["per_round_pct"] == [10.0]
    assert ab_summary([{"baseline": _side(None, None), "burst": _side(0.1, 1.0)}]) == {
        "rounds": 0, "left_out": 1}


@pytest.mark.parametrize("argv, why", [
    (["--rounds", "2"], "only with --baseline"),
    (["--rounds", "3", "--baseline-env", "X=1"], "an even number"),
    (["--rounds", "2", "--baseline-env", "X=1", "--profile", "p"], "one side only"),
])
def test_bad_rounds_fail_before_any_broker(argv: list[str], why: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert why in capsys.readouterr().err
