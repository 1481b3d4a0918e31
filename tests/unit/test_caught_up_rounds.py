"""The caught-up decision (streamproc/ops/caught_up.py) without a broker: `behind` on offset maps,
and the rounds driven against a simulated group whose inputs write into downstream topics."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from streamproc.__main__ import build_parser
from streamproc.config.topology import load_topology
from streamproc.ops.caught_up import (Lag, Result, behind, group_topics, run_rounds,
                                      run_wait_command)

ROOT = Path(__file__).resolve().parents[2]


def test_behind_names_each_partition_below_its_end_sorted():
    committed = {("b", 0): 3, ("a", 1): 5, ("a", 0): 7}
    ends = {("a", 0): 7, ("a", 1): 9, ("b", 0): 4, ("c", 2): 0}
    assert behind(committed, ends) == [Lag("a", 1, 5, 9), Lag("b", 0, 3, 4)]


def test_behind_counts_no_commit_as_zero_and_ahead_as_done():
    ends = {("in", 0): 0, ("in", 1): 2, ("in", 2): 5}
    committed = {("in", 0): None, ("in", 2): 6}  # ("in", 1) never committed at all
    assert behind(committed, ends) == [Lag("in", 1, None, 2)]
    assert behind({("in", 1): 2, ("in", 2): 5}, ends) == []
    assert str(Lag("in", 1, None, 2)) == "in:1 none/2"
    assert str(Lag("sink.x", 3, 4, 9)) == "sink.x:3 4/9"


class Pipeline:
    """A fake group: `in` -> `mid` -> `sink`. Each sleep the worker takes one step: every
    topic with uncommitted records is processed (its outputs written downstream, then its
    offset committed), one hop at a time. Reads are logged."""

    HOPS = {"in": "mid", "mid": "sink", "sink": None}

    def __init__(self, produced: int, fanout: int = 2, stalled: bool = False) -> None:
        self.end = {"in": produced, "mid": 0, "sink": 0}
        self.committed: dict[str, int | None] = {"in": None, "mid": None, "sink": None}
        self.fanout, self.stalled = fanout, stalled
        self.now = 0.0
        self.log: list[str] = []

    async def read_committed(self):
        self.log.append("committed")
        return {(t, 0): c for t, c in self.committed.items()}

    async def read_ends(self):
        self.log.append("ends")
        return {(t, 0): e for t, e in self.end.items()}

    async def sleep(self, s: float) -> None:
        self.now += s
        if self.stalled:
            return
        todo = {t: self.end[t] - (self.committed[t] or 0) for t in self.end}
        for topic, n in todo.items():
            if n > 0:
                nxt = self.HOPS[topic]
                if nxt:
                    self.end[nxt] += n * self.fanout  # outputs acknowledged first
                self.committed[topic] = (self.committed[topic] or 0) + n

    def clock(self) -> float:
        return self.now

    def run(self, timeout: float) -> Result:
        return asyncio.run(run_rounds(self.read_committed, self.read_ends, timeout=timeout,
                                      interval=0.5, clock=self.clock, sleep=self.sleep))


def test_one_snapshot_is_not_enough_rounds_follow_the_records_downstream():
    p = Pipeline(produced=5)
    r = p.run(timeout=60)
    assert r.caught_up and r.behind == []
    # each hop reached its snapshot while the next topic had new records: one round per
    # topic, and a last one finding nothing new
    assert r.rounds == 4
    assert p.end == {"in": 5, "mid": 10, "sink": 20}
    assert p.committed == {"in": 5, "mid": 10, "sink": 20}
    # the decision that said "caught up" read the committed offsets before the end offsets
    assert p.log[-2:] == ["committed", "ends"]
    assert (r.topics, r.partitions) == (3, 3)


def test_already_caught_up_is_one_round_without_sleeping():
    p = Pipeline(produced=0)
    p.committed = {"in": 0, "mid": None, "sink": None}
    r = p.run(timeout=60)
    assert r.caught_up and r.rounds == 1 and p.now == 0.0
    assert p.log == ["committed", "ends"]


def test_timeout_reports_the_partitions_still_behind():
    p = Pipeline(produced=3, stalled=True)
    r = p.run(timeout=2.0)
    assert not r.caught_up
    assert r.behind == [Lag("in", 0, None, 3)]
    assert r.seconds == pytest.approx(2.0)
    assert "1 of 3 partitions behind" in r.summary() and "in:0 none/3" in r.summary()
    assert r.as_dict()["behind"] == [{"topic": "in", "partition": 0, "committed": None,
                                     "end": 3}]


def test_timeout_zero_is_exactly_one_round_committed_first():
    p = Pipeline(produced=3)
    r = p.run(timeout=0)
    assert not r.caught_up and r.rounds == 1
    assert p.log == ["committed", "ends"] and p.now == 0.0


def test_a_failed_read_is_retried_until_the_deadline():
    p = Pipeline(produced=1)
    fails = [KafkaConnectionError("broker gone")]
    real = p.read_committed

    async def flaky():
        if fails:
            raise fails.pop()
        return await real()

    r = asyncio.run(run_rounds(flaky, p.read_ends, timeout=30, interval=0.5, clock=p.clock,
                               sleep=p.sleep))
    assert r.caught_up and r.error is None

    async def down():
        raise KafkaConnectionError("broker gone")

    r = asyncio.run(run_rounds(down, p.read_ends, timeout=0, clock=p.clock, sleep=p.sleep))
    assert not r.caught_up and "broker gone" in (r.error or "")
    assert "last error" in r.summary()


def test_summary_lines():
    ok = Result(True, 2, 3.21, 10, 60)
    assert ok.summary() == "caught up: 10 topics, 60 partitions, 3.2 s (2 rounds)"
    many = Result(False, 1, 5.0, 1, 30, [Lag("t", i, i, 100) for i in range(30)])
    assert many.summary().endswith("t:19 19/100 and 10 more")


def test_group_topics_are_inputs_repartition_topics_and_enabled_sinks_only():
    topo = load_topology(ROOT / "topics.yaml").with_prefix("x.")
    dests = dict(topo.destinations)
    dests["mailjet"] = dataclasses.replace(dests["mailjet"], enabled=False)
    topo = dataclasses.replace(topo, destinations=dests)
    names = group_topics(topo)
    assert names[:4] == [t.name for t in topo.inputs.values()]
    assert topo.internal["by_user"].name in names and topo.internal["by_contact"].name in names
    assert topo.internal["dead_letter"].name not in names
    assert topo.destinations["mailjet"].sink.name not in names
    assert all(d.dead_letter.name not in names for d in topo.destinations.values())
    assert {topo.destinations[s].sink.name for s in topo.enabled} <= set(names)
    assert len(names) == 4 + 2 + len(topo.enabled)


def test_the_wait_verb_parses_and_rejects_bad_usage(capsys):
    args = build_parser().parse_args(["wait", "--caught-up", "--timeout", "5", "--json"])
    assert (args.caught_up, args.timeout, args.json) == (True, 5.0, True)
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["wait"])  # --caught-up is the only thing it waits for
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["wait", "--caught-up", "--timeout", "soon"])
    assert e.value.code == 2
    bad = build_parser().parse_args(["wait", "--caught-up", "--timeout", "-1"])
    assert asyncio.run(run_wait_command(None, None, bad)) == 2  # before any Kafka I/O
    assert "--timeout" in capsys.readouterr().err
