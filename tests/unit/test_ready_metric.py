"""Readiness as a metric: streamproc_ready (1 ready, 0 not) is set before each scrape by the
refresher streamproc.http.observe installs, from streamproc.http.web.is_ready, the function
GET /ready answers with."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from streamproc.core.metrics import Metrics
from streamproc.http import observe, web


class _Event:
    def __init__(self, done: bool) -> None:
        self.done = done

    def is_set(self) -> bool:
        return self.done


class _Consumer:
    def __init__(self, assigned: set | None) -> None:
        self.assigned = assigned

    def assignment(self) -> set:
        if self.assigned is None:
            raise RuntimeError("consumer not started")
        return self.assigned


def _runtime(*, rebalancing: bool = False, assigned: set | None = frozenset({("t", 0)}),
             recovered: bool = True, producer: object | None = "started") -> SimpleNamespace:
    app = SimpleNamespace(rebalancing=rebalancing, consumer=_Consumer(assigned),
                          tables=SimpleNamespace(recovery=SimpleNamespace(
                              completed=_Event(recovered))))
    return SimpleNamespace(app=app, metrics=Metrics(), tables={},
                           output=SimpleNamespace(producer=producer))


def _ready(rt: SimpleNamespace) -> float:
    return rt.metrics.snapshot()["ready"][()]


def test_the_gauge_is_exported_at_0_before_the_first_scrape():
    assert b"\nstreamproc_ready 0.0\n" in Metrics().render()


def test_install_registers_the_ready_refresher_and_a_scrape_sets_the_gauge():
    rt = _runtime()
    observe.install(rt)
    assert observe.refresh_ready in rt.metrics._refreshers  # noqa: SLF001
    rt.metrics.refresh(rt)
    assert _ready(rt) == 1
    assert b"\nstreamproc_ready 1.0\n" in rt.metrics.render()


def test_the_gauge_says_what_ready_says_in_every_state():
    cases = [
        (_runtime(), True, "1 partitions assigned"),
        (_runtime(rebalancing=True), False, "rebalancing"),
        (_runtime(assigned=None), False, "consumer not started"),
        (_runtime(assigned=set()), False, "no partitions assigned"),
        (_runtime(recovered=False), False, "recovering tables"),
        # the ingest endpoints answer 503 until the output producer runs: not ready till then
        (_runtime(producer=None), False, "output producer not started"),
    ]
    for rt, ready, detail in cases:
        assert web.is_ready(rt) == (ready, detail)
        rt.metrics.ready.set(0 if ready else 1)  # the opposite, to see the refresher set it
        observe.refresh_ready(rt)
        assert _ready(rt) == (1 if ready else 0), detail


def test_a_worker_that_stops_being_ready_drops_to_0():
    rt = _runtime()
    observe.refresh_ready(rt)
    assert _ready(rt) == 1
    rt.app.rebalancing = True
    observe.refresh_ready(rt)
    assert _ready(rt) == 0


def test_a_failing_check_reports_0_not_a_stale_1(monkeypatch, caplog):
    rt = _runtime()
    rt.metrics.on_refresh(observe.refresh_ready)
    rt.metrics.refresh(rt)
    assert _ready(rt) == 1

    def broken(runtime):
        raise RuntimeError("boom")

    monkeypatch.setattr(web, "is_ready", broken)
    with caplog.at_level(logging.ERROR, logger="streamproc.core.metrics"):
        rt.metrics.refresh(rt)  # logged, never breaks the scrape
    assert _ready(rt) == 0
    assert "refresher" in caplog.text
