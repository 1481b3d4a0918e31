"""bench/holds.py's own logic (the benchmark itself needs a broker and is not in the suite): the
phases' records, the processing windows, the hold counters read from /metrics, the sink
comparison and the figures between the runs."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import gen  # noqa: E402
from bench.holds import (  # noqa: E402
    RUNS, compare, hold_counts, phase_records, run_keys, sink_diff, windows,
)


def test_the_phases_cover_the_corpus_once_in_each_run_keeping_each_topics_order():
    raws = gen.mixed(2000, seed=3)
    for phases, _ in RUNS.values():
        parts = [phase_records(raws, p) for p in phases]
        assert sorted(id(r) for part in parts for r in part) == sorted(id(r) for r in raws)
        for part in parts:
            pos = [raws.index(r) for r in part[:50]]
            assert pos == sorted(pos)
    assert RUNS["B"][0] == tuple(reversed(RUNS["A"][0]))
    assert RUNS["A"][0][0] == ("segment",) and RUNS["C"][1]["STREAMPROC_HOLD_SECONDS"] == "0"


def test_windows_are_first_to_last_output_inside_each_phase():
    ts = [1.0, 1.5, 2.0, 10.2, 10.9, 11.0]
    assert windows(ts, [(0.5, 5.0), (5.0, 9.0), (10.0, 12.0)]) == [(1.0, 2.0), None, (10.2, 11.0)]


def test_hold_counts_sum_sources_and_split_drop_reasons():
    text = "\n".join([
        '# HELP streamproc_tracks_held_total x',
        'streamproc_tracks_held_total{source="mailmodo",waits_for="not_identified"} 5.0',
        'streamproc_tracks_held_total{source="segment",waits_for="unknown_user"} 2.0',
        'streamproc_tracks_held_created{source="segment",waits_for="unknown_user"} 1.7e9',
        'streamproc_holds_released_total{source="mailmodo",waits_for="not_identified"} 4.0',
        'streamproc_holds_dropped_total{reason="expired",source="mailjet",waits_for="x"} 1.0',
        'streamproc_holds_dropped_total{reason="overflow",source="mailjet",waits_for="x"} 3.0',
    ])
    assert hold_counts(text) == {"held": 7, "released": 4, "expired": 1, "overflow": 3}


def test_sink_diff_is_empty_only_for_the_same_multiset():
    a = Counter({("segment", "1"): 1, ("mailmodo", "2"): 2})
    assert sink_diff(a, Counter(a)) == {}
    d = sink_diff(a, Counter({("segment", "1"): 1, ("mailmodo", "2"): 1, ("x", "3"): 1}))
    assert (d["only_first"], d["only_second"]) == (1, 1)
    assert d["examples_first"] == [["mailmodo", "2"]]


def _run(cpu: float, eps: float, held: int, writes: int) -> dict:
    return {"worker_cpu_s_per_1k_inputs": cpu, "events_per_s": eps, "holds": {"held": held},
            "table_writes": {"known-users": writes, "contacts": 0}}


def test_compare_averages_repeats_and_divides_extra_changelog_records_by_extra_holds():
    runs = {"A": _run(0.10, 1000, 100, 5000), "B": _run(0.12, 900, 1100, 5400),
            "A2": _run(0.10, 1000, 100, 5000), "B2": _run(0.10, 900, 1100, 5200),
            "C": _run(0.08, 1100, 0, 4900)}
    got = compare(runs)
    assert got["holding_cost_cpu"] == 0.1  # (0.11 - 0.10) / 0.10
    assert got["extra_held"] == 1000 and got["extra_changelog_records"] == 300
    assert got["changelog_records_per_held"] == 0.3 and got["changelog_per_held_within_1"]
    assert got["check_cost_cpu"] == 0.25
    assert got["means"]["B"]["repeats"] == 2


def test_run_keys_number_the_repeats():
    assert run_keys(["A", "B", "C", "B", "A"]) == ["A", "B", "C", "B2", "A2"]
